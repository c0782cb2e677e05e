//! The processes the suite runs and breaks: a private Postgres cluster, a private RabbitMQ node,
//! a TCP gate in front of RabbitMQ for Baton, Baton itself and a set of supervised workers.
//!
//! Nothing here touches the machine's own Postgres or RabbitMQ: every service gets its own
//! ports, data directory and (for RabbitMQ) node name, and every one is stopped and removed when
//! its guard is dropped, which also happens on a panic or ctrl-c.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read},
    net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// A free TCP port on the loopback interface (free now; the services claim it moments later).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = StdListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Sends `signal` to process `pid`.
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

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Removes every `BATON_*` variable the suite inherited: each child gets exactly the settings
/// the suite gives it.
fn clean_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BATON_") {
            command.env_remove(name);
        }
    }
}

fn log_file(path: &Path) -> anyhow::Result<(File, File)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok((file.try_clone()?, file))
}

/// The last `lines` lines of a log, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The run's deadline: no wait here outlasts it.
static DEADLINE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

pub fn set_deadline(deadline: Instant) {
    let _ = DEADLINE.set(deadline);
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let mut end = Instant::now() + timeout;
    if let Some(deadline) = DEADLINE.get() {
        end = end.min(*deadline);
    }
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("{what} did not happen within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// --- Postgres ------------------------------------------------------------------------------------

/// A Postgres cluster made with `initdb` in a directory of its own, on its own port, with trust
/// authentication on loopback. As root, its commands run as the `postgres` user.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl Postgres {
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
            "\n# baton-fault\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
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

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
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

// --- RabbitMQ ------------------------------------------------------------------------------------

/// A RabbitMQ node with its own node name, ports, data, logs, configuration and Erlang cookie
/// (its own HOME), run as a child process in a process group of its own.
pub struct Rabbit {
    dir: PathBuf,
    pub node: String,
    pub port: u16,
    pub dist_port: u16,
    child: Option<Child>,
}

impl Rabbit {
    pub fn new(dir: &Path, port: u16, dist_port: u16) -> anyhow::Result<Self> {
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
            node: format!("baton-fault-{}@localhost", std::process::id()),
            port,
            dist_port,
            child: None,
        })
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
        let _ = fs::remove_file(self.pid_file());
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
        let result = wait_until("RabbitMQ accepting connections", Duration::from_secs(120), || {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("rabbitmq-server exited at start ({status})");
            }
            Ok(port_open(port))
        });
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
            let _ = child.wait();
        }
        let port = self.port;
        wait_until("RabbitMQ's port closing", Duration::from_secs(10), || {
            Ok(!port_open(port))
        })?;
        Ok(pid)
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        if let Ok(pid) = self.beam_pid() {
            let _ = send_signal(pid, libc::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            if let Ok(group) = libc::pid_t::try_from(child.id()) {
                // SAFETY: killpg(2) has no memory-safety preconditions.
                unsafe { libc::killpg(group, libc::SIGKILL) };
            }
            let _ = child.wait();
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

// --- TCP gate ------------------------------------------------------------------------------------

/// A TCP forwarder: open, it carries connections to `upstream`; closed, it cuts the connections
/// it carries and refuses new ones. Baton reaches RabbitMQ through it, so RabbitMQ can be made
/// unreachable for Baton alone.
pub struct Gate {
    pub port: u16,
    open: Arc<watch::Sender<bool>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Gate {
    pub async fn new(upstream_port: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (open, _) = watch::channel(true);
        let open = Arc::new(open);
        let state = Arc::clone(&open);
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*state.borrow() {
                    drop(client);
                    continue;
                }
                let mut closed = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Ok(Self { port, open, accept })
    }

    pub fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.set_open(false);
        self.accept.abort();
    }
}

// --- Baton ---------------------------------------------------------------------------------------

/// `baton serve` as a child process, restartable on the same port, data and log.
pub struct Baton {
    exe: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    pub port: u16,
    child: Option<Child>,
    pub starts: u32,
}

impl Baton {
    pub fn new(exe: PathBuf, env: Vec<(String, String)>, log: PathBuf, port: u16) -> Self {
        Self {
            exe,
            env,
            log,
            port,
            child: None,
            starts: 0,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts Baton and waits until it answers `/healthz`.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let (stdout, stderr) = log_file(&self.log)?;
        let mut command = Command::new(&self.exe);
        clean_env(&mut command);
        command
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        self.child = Some(child);
        self.starts += 1;
        let port = self.port;
        let result = wait_until("Baton answering /healthz", Duration::from_secs(90), || {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("Baton exited at start ({status})");
            }
            Ok(healthz(port))
        });
        if let Err(e) = result {
            bail!("{e}\n{}", tail(&self.log, 30));
        }
        Ok(())
    }

    /// SIGKILL: no graceful shutdown, nothing flushed. Returns the pid killed.
    pub fn kill(&mut self) -> anyhow::Result<u32> {
        let mut child = self.child.take().context("Baton is not running")?;
        let pid = child.id();
        child.kill().context("SIGKILL to Baton")?;
        child.wait()?;
        Ok(pid)
    }

    /// Stops Baton with SIGTERM (graceful: in-flight requests finish or are dropped), then runs
    /// one `baton cleanup` pass with no grace period, as the scheduled pass would after its grace
    /// period: with Baton stopped nothing is in flight, so crash leftovers (temp files of uploads
    /// a SIGKILL interrupted) must go and the volume must match the rows. Returns its summary.
    pub fn stop_and_clean(&mut self) -> anyhow::Result<String> {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), libc::SIGTERM).context("SIGTERM to Baton")?;
            child.wait()?;
        }
        let mut command = Command::new(&self.exe);
        clean_env(&mut command);
        let output = command
            .arg("cleanup")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("BATON_CLEANUP_GRACE", "0s")
            .stdin(Stdio::null())
            .output()
            .context("running baton cleanup")?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !output.status.success() {
            bail!(
                "baton cleanup failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(text)
    }

    /// `Some(status)` if Baton exited without the suite killing it.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn healthz(port: u16) -> bool {
    use std::io::Write;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = StdStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

// --- Workers -------------------------------------------------------------------------------------

/// How a worker process ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerExit {
    pub worker: String,
    pub pid: u32,
    /// The signal that ended it, if one did (6 = SIGABRT, the poison job; 9 = SIGKILL).
    pub signal: Option<i32>,
    pub code: Option<i32>,
    pub at_s: f64,
}

struct Slot {
    index: usize,
    generation: u32,
    id: String,
    child: Child,
}

struct WorkersInner {
    exe: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    slots: Vec<Slot>,
    exits: Vec<WorkerExit>,
    stopping: bool,
}

/// Worker processes kept at a fixed count: one that dies is replaced, as a deployment would.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Mutex<WorkersInner>>,
    started: Instant,
}

impl Workers {
    pub fn start(
        exe: PathBuf,
        env: Vec<(String, String)>,
        logs: PathBuf,
        count: usize,
        started: Instant,
    ) -> anyhow::Result<Self> {
        let mut inner = WorkersInner {
            exe,
            env,
            logs,
            slots: Vec::new(),
            exits: Vec::new(),
            stopping: false,
        };
        for index in 0..count {
            let slot = inner.spawn(index, 0)?;
            inner.slots.push(slot);
        }
        let workers = Self {
            inner: Arc::new(Mutex::new(inner)),
            started,
        };
        let supervisor = workers.clone();
        std::thread::spawn(move || supervisor.supervise());
        Ok(workers)
    }

    fn supervise(&self) {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if !self.reap() {
                return;
            }
        }
    }

    /// Records and replaces every worker that exited. Returns false once stopping.
    fn reap(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.stopping {
            return false;
        }
        for i in 0..inner.slots.len() {
            let Ok(Some(status)) = inner.slots[i].child.try_wait() else {
                continue;
            };
            let exit = WorkerExit {
                worker: inner.slots[i].id.clone(),
                pid: inner.slots[i].child.id(),
                signal: status.signal(),
                code: status.code(),
                at_s: self.started.elapsed().as_secs_f64(),
            };
            inner.exits.push(exit);
            let (index, generation) = (inner.slots[i].index, inner.slots[i].generation + 1);
            match inner.spawn(index, generation) {
                Ok(slot) => inner.slots[i] = slot,
                Err(e) => eprintln!("baton-fault: could not restart worker {index}: {e:#}"),
            }
        }
        true
    }

    /// The worker ids currently running, with their pids.
    pub fn running(&self) -> Vec<(String, u32)> {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.slots.iter().map(|s| (s.id.clone(), s.child.id())).collect()
    }

    pub fn pid_of(&self, worker: &str) -> Option<u32> {
        self.running()
            .into_iter()
            .find(|(id, _)| id == worker)
            .map(|(_, pid)| pid)
    }

    /// Every exit so far, including any the supervisor has not polled yet.
    pub fn exits(&self) -> Vec<WorkerExit> {
        self.reap();
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .exits
            .clone()
    }

    pub fn stop_all(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.stopping = true;
        for slot in &mut inner.slots {
            let _ = send_signal(slot.child.id(), libc::SIGCONT);
            let _ = slot.child.kill();
            let _ = slot.child.wait();
        }
    }
}

impl WorkersInner {
    fn spawn(&self, index: usize, generation: u32) -> anyhow::Result<Slot> {
        let id = format!("fault-worker-{index}.{generation}");
        let (stdout, stderr) = log_file(&self.logs.join(format!("worker-{index}.log")))?;
        let mut command = Command::new(&self.exe);
        clean_env(&mut command);
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("BATON_WORKER_ID", &id)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        Ok(Slot {
            index,
            generation,
            id,
            child,
        })
    }
}
