//! Resident memory of a process, sampled from `/proc/<pid>/status` every 50 ms.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::Serialize;
use tokio::task::JoinHandle;

const INTERVAL: Duration = Duration::from_millis(50);

/// Memory over one measured stretch, in KiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RssStats {
    pub start_kib: u64,
    pub end_kib: u64,
    /// The larger of the highest sample and the kernel's high-water mark (reset at the start
    /// when the kernel allows it).
    pub peak_kib: u64,
    pub max_sampled_kib: u64,
    pub hwm_kib: u64,
    pub hwm_was_reset: bool,
    pub samples: usize,
}

impl RssStats {
    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }

    pub fn growth_mib(&self) -> f64 {
        (self.end_kib as f64 - self.start_kib as f64) / 1024.0
    }
}

pub struct RssSampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    task: JoinHandle<(u64, u64, usize)>,
    start_kib: u64,
    hwm_was_reset: bool,
}

/// `(VmRSS, VmHWM)` in KiB, or `None` once the process is gone.
pub fn read_status(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

impl RssSampler {
    /// Starts sampling `pid`, first resetting its high-water mark (writing 5 to `clear_refs`).
    pub fn start(pid: u32) -> Self {
        let hwm_was_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let start_kib = read_status(pid).map_or(0, |(rss, _)| rss);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let (mut max, mut last, mut samples) = (start_kib, start_kib, 0_usize);
            let mut ticker = tokio::time::interval(INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !flag.load(Ordering::Relaxed) {
                ticker.tick().await;
                let Some((rss, _)) = read_status(pid) else {
                    break;
                };
                max = max.max(rss);
                last = rss;
                samples += 1;
            }
            (max, last, samples)
        });
        Self {
            pid,
            stop,
            task,
            start_kib,
            hwm_was_reset,
        }
    }

    pub async fn finish(self) -> RssStats {
        self.stop.store(true, Ordering::Relaxed);
        let (max_sampled, last, samples) = self.task.await.unwrap_or_default();
        let (end, hwm) = read_status(self.pid).unwrap_or((last, 0));
        // Without a reset the high-water mark covers the process's whole life: not this stretch.
        let hwm_here = if self.hwm_was_reset { hwm } else { 0 };
        RssStats {
            start_kib: self.start_kib,
            end_kib: end,
            peak_kib: max_sampled.max(hwm_here).max(end),
            max_sampled_kib: max_sampled,
            hwm_kib: hwm,
            hwm_was_reset: self.hwm_was_reset,
            samples,
        }
    }
}
