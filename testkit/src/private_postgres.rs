//! A private Postgres cluster made with `initdb` in a directory of its own, on its own port,
//! with trust authentication on loopback; stopped when dropped. The machine's own Postgres is
//! never touched.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::process::tail;

#[allow(unsafe_code)]
fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// As root, its commands run as the `postgres` user (initdb refuses root).
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    pub fn init(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let bin = find_postgres_bin()?;
        fs::create_dir_all(dir)?;
        let as_postgres = is_root();
        if as_postgres {
            // initdb refuses to run as root: the cluster belongs to the postgres user.
            let status = Command::new("chown")
                .args(["postgres:postgres", &dir.display().to_string()])
                .status()
                .context("chown of the Postgres directory")?;
            if !status.success() {
                bail!("cannot give {} to the postgres user", dir.display());
            }
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let postgres = Self {
            bin,
            dir: dir.to_owned(),
            port,
            as_postgres,
        };
        let data = postgres.data().display().to_string();
        let output = postgres
            .command("initdb")
            .args(["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let settings = format!(
            "\n# baton-testkit\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 200\nfsync = on\nlog_min_messages = warning\n",
            postgres.dir.display()
        );
        let conf = postgres.data().join("postgresql.conf");
        let mut text = fs::read_to_string(&conf)?;
        text.push_str(&settings);
        // Written as root into the postgres user's directory: the file keeps its owner.
        fs::write(&conf, text)?;
        Ok(postgres)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let data = self.data().display().to_string();
        let log = self.log().display().to_string();
        let output = self
            .command("pg_ctl")
            .args(["-D", &data, "-l", &log, "-w", "-t", "60"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running pg_ctl")?;
        if !output.status.success() {
            bail!(
                "pg_ctl {} failed: {}{}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                tail(&self.log(), 20)
            );
        }
        Ok(())
    }

    pub fn start(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["start"])
    }

    /// A clean shutdown that disconnects every session at once (`-m fast`).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["stop", "-m", "fast"])
    }

    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists()
            && let Err(e) = self.pg_ctl(&["stop", "-m", "immediate"])
        {
            eprintln!("could not stop the private Postgres: {e:#}");
        }
    }
}

fn find_postgres_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("BATON_FAULT_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!("no initdb under /usr/lib/postgresql/*/bin (install postgresql, or set BATON_FAULT_PG_BIN)"),
    }
}
