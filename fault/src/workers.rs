//! The workers the suite runs and breaks: `baton-fault-worker` processes kept at a fixed count
//! by a supervisor thread, as a deployment would keep them.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use baton_testkit::process::{clean_env, log_file, send_signal};

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
    /// Each process gets a cache directory of its own below this (`BATON_CACHE_DIR`).
    caches: PathBuf,
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
        caches: PathBuf,
        count: usize,
        started: Instant,
    ) -> anyhow::Result<Self> {
        let mut inner = WorkersInner {
            exe,
            env,
            logs,
            caches,
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
            // A worker stopped with SIGSTOP by a fault must run again to die; one that already
            // exited refuses both signals, which is fine.
            send_signal(slot.child.id(), libc::SIGCONT).ok();
            slot.child.kill().ok();
            if let Err(e) = slot.child.wait() {
                eprintln!("baton-fault: could not wait for worker {}: {e}", slot.id);
            }
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
            .env("BATON_CACHE_DIR", self.caches.join(&id))
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
