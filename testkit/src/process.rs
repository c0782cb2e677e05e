//! Child processes whose output goes to a log file, with the environment each is given and
//! nothing it would inherit by accident.

use std::{
    fs::{File, OpenOptions},
    io,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// Whether an inherited variable would configure a Baton process behind the caller's back.
fn is_baton_setting(key: &str) -> bool {
    key.starts_with("BATON_") || key == "RUST_LOG"
}

/// Removes every `BATON_*` and `RUST_LOG` variable the caller inherited: each child gets exactly
/// the settings it is given.
pub fn clean_env(command: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        if is_baton_setting(&key.to_string_lossy()) {
            command.env_remove(key);
        }
    }
}

/// [`clean_env`] for a tokio command.
pub fn clean_env_async(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if is_baton_setting(&key.to_string_lossy()) {
            command.env_remove(key);
        }
    }
}

/// `path` opened for appending (created if missing), twice: for stdout and stderr.
pub fn log_file(path: &Path) -> anyhow::Result<(File, File)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok((file.try_clone()?, file))
}

/// The last `lines` lines of a log, for error messages (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends `signal` to process `pid`.
#[allow(unsafe_code)]
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What to start: a program, its arguments and environment (on top of a clean one), where it
/// runs and where its output goes.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub log: PathBuf,
}

/// A running child process whose output goes to its log; killed if dropped.
pub struct Service {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Service {
    /// Starts `spec`; its log is appended to.
    pub fn spawn(spec: &Spec) -> anyhow::Result<Self> {
        let (out, err) = log_file(&spec.log)?;
        let mut command = Command::new(&spec.program);
        clean_env_async(&mut command);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", spec.program.display()))?;
        Ok(Self {
            name: spec.name.clone(),
            log: spec.log.clone(),
            child,
        })
    }

    /// The process id (0 once it has been waited for).
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails if the process has exited, with the tail of its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            );
        }
        Ok(())
    }

    /// SIGKILL, and waits for the process to be gone. Returns its pid.
    pub async fn kill(mut self) -> anyhow::Result<u32> {
        let pid = self.pid();
        self.child
            .kill()
            .await
            .with_context(|| format!("SIGKILL to {}", self.name))?;
        Ok(pid)
    }

    /// SIGTERM, then SIGKILL if the process has not exited after `grace`. Returns how it
    /// exited if it did so by itself (or had already), `None` if it had to be killed.
    pub async fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(pid) = self.child.id() {
            if let Err(e) = send_signal(pid, libc::SIGTERM) {
                eprintln!("  SIGTERM to {} failed: {e}", self.name);
            }
            if let Ok(waited) = tokio::time::timeout(grace, self.child.wait()).await {
                return waited.ok();
            }
            eprintln!("  {} did not stop within {grace:?}; killing it", self.name);
        } else if let Some(status) = self.exited() {
            return Some(status);
        }
        // An error here means the process is gone already, which is what was wanted.
        self.child.kill().await.ok();
        None
    }
}

/// Sends `signal` to every process of group `group`; errors (the group is gone) are ignored.
#[allow(unsafe_code)]
pub fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: killpg(2) has no memory-safety preconditions.
    unsafe { libc::killpg(group, signal) };
}
