//! One emulator child process: started in a process group of its own on a fixed port, stopped
//! (SIGTERM, then SIGKILL) or killed on request and killed when dropped, and started again on
//! the same port. Every emulator is forked by one long-lived thread and asks the kernel to kill
//! it when that thread ends, so an emulator shared through a `static` (never dropped) still dies
//! with the test binary instead of outliving it.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock, mpsc},
    time::Duration,
};

use anyhow::{Context, bail};

use crate::{
    poll::wait_until,
    ports::port_open,
    process::{clean_env, log_file, send_signal, signal_group, tail},
};

/// How long an emulator may take to accept connections (moto imports a lot of Python).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped emulator may take to close its port.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) struct EmulatorProcess {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    pub(crate) port: u16,
    child: Option<Child>,
}

impl EmulatorProcess {
    pub(crate) fn new(name: &'static str, program: PathBuf, args: Vec<String>, log: PathBuf, port: u16) -> Self {
        Self {
            name,
            program,
            args,
            log,
            port,
            child: None,
        }
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process and waits until its port accepts connections.
    pub(crate) fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        if port_open(self.port) {
            bail!("port {} is taken: {} cannot start on it", self.port, self.name);
        }
        let (stdout, stderr) = log_file(&self.log)?;
        let mut command = Command::new(&self.program);
        clean_env(&mut command);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        self.child = Some(spawn_tied_to_this_process(command).with_context(|| format!("starting {}", self.name))?);
        let port = self.port;
        let waited = wait_until(
            &format!("{} accepting connections", self.name),
            START_TIMEOUT,
            None,
            || {
                if let Some(child) = self.child.as_mut()
                    && let Some(status) = child.try_wait()?
                {
                    bail!("{} exited at start ({status})", self.name);
                }
                Ok(port_open(port))
            },
        );
        if let Err(e) = waited {
            self.kill().ok();
            bail!("{e}; last lines of {}:\n{}", self.log.display(), tail(&self.log, 20));
        }
        Ok(())
    }

    /// SIGTERM to the process group, SIGKILL if it has not exited after `grace`; waits until
    /// the port is closed.
    pub(crate) fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(group) = libc::pid_t::try_from(child.id()) {
            signal_group(group, libc::SIGTERM);
        }
        let exited = wait_until(&format!("{} exiting", self.name), grace, None, || {
            Ok(child.try_wait()?.is_some())
        });
        if exited.is_err() {
            eprintln!("{} did not stop within {grace:?}; killing it", self.name);
            kill_group(&mut child);
        }
        self.wait_port_closed()
    }

    /// SIGKILL to the process group: no shutdown, no flushing. Waits until the port is closed.
    pub(crate) fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
        self.wait_port_closed()
    }

    fn wait_port_closed(&self) -> anyhow::Result<()> {
        let port = self.port;
        wait_until(&format!("{}'s port closing", self.name), STOP_TIMEOUT, None, || {
            Ok(!port_open(port))
        })
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

fn kill_group(child: &mut Child) {
    match libc::pid_t::try_from(child.id()) {
        Ok(group) => signal_group(group, libc::SIGKILL),
        Err(_) => {
            send_signal(child.id(), libc::SIGKILL).ok();
        }
    }
    if let Err(e) = child.wait() {
        eprintln!("could not wait for an emulator process: {e}");
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as this process, with the parent-death
/// signal set to SIGKILL: the kernel sends it when the forking thread ends, which for that
/// thread means when this process ends, however it ends.
fn spawn_tied_to_this_process(command: Command) -> anyhow::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("emulator-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    set_parent_death_signal(&mut command);
                    // The requester may have given up waiting: nothing to tell then.
                    reply.send(command.spawn()).ok();
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("could not start the emulator spawner thread: {e}"));
        Mutex::new(requests)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .map_err(|_| anyhow::anyhow!("the emulator spawner's lock is poisoned"))?
        .send((command, reply))
        .context("the emulator spawner thread is gone")?;
    Ok(answer.recv().context("the emulator spawner thread is gone")??)
}

#[allow(unsafe_code)]
fn set_parent_death_signal(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The project-local tools directory scripts/emulators installs into (`.tools` at the
/// workspace root), or `BATON_TOOLS_DIR`.
pub(crate) fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BATON_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    crate::cargo::workspace_root(env!("CARGO_MANIFEST_DIR")).join(".tools")
}

/// `relative` under [`tools_dir`], or an error that says how to install it.
pub(crate) fn installed_tool(relative: &str) -> anyhow::Result<PathBuf> {
    let path = tools_dir().join(relative);
    if !path.exists() {
        bail!(
            "{} is missing: run scripts/emulators (or scripts/services) to install the object-store emulators",
            path.display()
        );
    }
    Ok(path)
}
