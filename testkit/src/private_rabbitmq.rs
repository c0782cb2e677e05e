//! A private RabbitMQ node with its own node name, ports, data, logs, configuration and Erlang
//! cookie (its own HOME), run as a child process in a process group of its own, and killed
//! when dropped. The machine's own RabbitMQ is never touched.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{
    poll::wait_until,
    ports::port_open,
    process::{log_file, send_signal, signal_group, tail},
};

pub struct PrivateRabbit {
    dir: PathBuf,
    pub node: String,
    pub port: u16,
    pub dist_port: u16,
    child: Option<Child>,
    /// No wait of this node's outlasts it.
    cap: Option<Instant>,
}

impl PrivateRabbit {
    /// A node named `{name}-{this process's pid}@localhost` that keeps its files in `dir`, not
    /// started yet.
    pub fn new(dir: &Path, name: &str, port: u16, dist_port: u16) -> anyhow::Result<Self> {
        for sub in ["home", "mnesia", "log"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(dir.join("enabled_plugins"), "[].\n")?;
        fs::write(dir.join("rabbitmq-env.conf"), "")?;
        fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nlog.console = false\nlog.file.level = info\n"),
        )?;
        Ok(Self {
            dir: dir.to_owned(),
            node: format!("{name}-{}@localhost", std::process::id()),
            port,
            dist_port,
            child: None,
            cap: None,
        })
    }

    /// Ends every later wait (start, kill) at `cap` at the latest.
    pub fn cap_waits_at(&mut self, cap: Instant) {
        self.cap = Some(cap);
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("rabbitmq.pid")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("log").join(format!("{}.log", self.node))
    }

    /// Starts the node (on its existing data, if any) and waits for the AMQP port.
    pub fn start(&mut self) -> anyhow::Result<()> {
        // A pid file left by a killed node would name a dead process.
        if let Err(e) = fs::remove_file(self.pid_file())
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).context("removing RabbitMQ's old pid file");
        }
        let server = find_rabbitmq_server()?;
        let (stdout, stderr) = log_file(&self.dir.join("server.out"))?;
        let dir = |sub: &str| self.dir.join(sub).display().to_string();
        let mut command = Command::new(server);
        command
            .current_dir(&self.dir)
            .env("HOME", dir("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir("log"))
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", dir("rabbitmq-env.conf"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let child = command.spawn().context("starting rabbitmq-server")?;
        self.child = Some(child);
        let port = self.port;
        let result = wait_until(
            "RabbitMQ accepting connections",
            Duration::from_secs(120),
            self.cap,
            || {
                if let Some(child) = self.child.as_mut()
                    && let Some(status) = child.try_wait()?
                {
                    bail!("rabbitmq-server exited at start ({status})");
                }
                Ok(port_open(port))
            },
        );
        if let Err(e) = result {
            bail!(
                "{e}\n{}\n{}",
                tail(&self.dir.join("server.out"), 20),
                tail(&self.log(), 20)
            );
        }
        Ok(())
    }

    /// The OS pid of the node's Erlang VM (`beam.smp`).
    pub fn beam_pid(&self) -> anyhow::Result<u32> {
        let text = fs::read_to_string(self.pid_file()).context("reading RabbitMQ's pid file")?;
        text.trim().parse().context("RabbitMQ's pid file holds no pid")
    }

    /// SIGKILLs the Erlang VM: no shutdown, no flushing. Returns the pid killed.
    pub fn kill(&mut self) -> anyhow::Result<u32> {
        let pid = self.beam_pid()?;
        send_signal(pid, libc::SIGKILL).context("SIGKILL to RabbitMQ")?;
        if let Some(mut child) = self.child.take() {
            // The wrapper script exits with the VM; its status says nothing new.
            child.wait().context("waiting for rabbitmq-server")?;
        }
        let port = self.port;
        wait_until("RabbitMQ's port closing", Duration::from_secs(10), self.cap, || {
            Ok(!port_open(port))
        })?;
        Ok(pid)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        // A node that was never started or already killed has no pid file or a dead pid: fine.
        if let Ok(pid) = self.beam_pid() {
            send_signal(pid, libc::SIGKILL).ok();
        }
        if let Some(mut child) = self.child.take() {
            if let Ok(group) = libc::pid_t::try_from(child.id()) {
                signal_group(group, libc::SIGKILL);
            }
            if let Err(e) = child.wait() {
                eprintln!("could not wait for rabbitmq-server: {e}");
            }
        }
    }
}

fn find_rabbitmq_server() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("BATON_FAULT_RABBITMQ_SERVER") {
        return Ok(PathBuf::from(path));
    }
    // Not /usr/sbin/rabbitmq-server: Debian's wrapper there switches to the rabbitmq user and
    // the system node's directories.
    let direct = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
    if direct.exists() {
        return Ok(direct);
    }
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/rabbitmq/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("sbin").join("rabbitmq-server"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().context(
        "no rabbitmq-server under /usr/lib/rabbitmq (install rabbitmq-server, or set BATON_FAULT_RABBITMQ_SERVER)",
    )
}
