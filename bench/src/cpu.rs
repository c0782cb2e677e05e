//! CPU time used by each component during a measured stretch, from `/proc`: where the
//! machine's two cores went (Baton, the bench's own clients, Postgres, RabbitMQ, workers).

use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` and `/proc/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// Which processes make up each component.
#[derive(Debug, Clone)]
pub enum Who {
    Pid(u32),
    /// Every process whose `comm` is this name (e.g. all Postgres backends, shared with
    /// anything else using the same server).
    Comm(&'static str),
    /// A process and all its descendants (a Celery worker and its pool, a client and the
    /// processes it spawned).
    Tree(u32),
    /// This process's finished and waited-for children (and, transitively, theirs): for a
    /// client process that is spawned and waited for within the measured stretch.
    WaitedChildren,
}

pub struct CpuMeter {
    groups: Vec<(String, Vec<Who>)>,
    started: Instant,
    before: Snapshot,
    machine_before: (f64, f64),
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub seconds: f64,
    /// CPU seconds per component.
    pub cpu_seconds: BTreeMap<String, f64>,
    /// Cores busy on the whole machine on average (anything, including other users).
    pub machine_busy_cores: f64,
    pub cores: usize,
}

impl CpuUse {
    /// Several measured stretches as one.
    pub fn sum(parts: &[CpuUse]) -> CpuUse {
        let seconds: f64 = parts.iter().map(|p| p.seconds).sum();
        let mut cpu_seconds = BTreeMap::new();
        for part in parts {
            for (k, v) in &part.cpu_seconds {
                *cpu_seconds.entry(k.clone()).or_insert(0.0) += v;
            }
        }
        let busy: f64 = parts.iter().map(|p| p.machine_busy_cores * p.seconds).sum();
        CpuUse {
            seconds,
            cpu_seconds,
            machine_busy_cores: busy / seconds.max(f64::EPSILON),
            cores: parts.first().map_or(1, |p| p.cores),
        }
    }

    /// Milliseconds of CPU per unit of work, per component.
    pub fn per(&self, units: usize) -> BTreeMap<String, f64> {
        self.cpu_seconds
            .iter()
            .map(|(k, v)| (k.clone(), v * 1e3 / units.max(1) as f64))
            .collect()
    }

    /// `baton 1.2, bench 0.8, ...` milliseconds of CPU per unit.
    pub fn summary(&self, units: usize) -> String {
        let per = self.per(units);
        let parts: Vec<String> = per.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        parts.join(", ")
    }
}

impl CpuMeter {
    pub fn start(groups: Vec<(String, Vec<Who>)>) -> Self {
        let before = snapshot(&groups);
        Self {
            groups,
            started: Instant::now(),
            before,
            machine_before: machine_ticks(),
        }
    }

    pub fn finish(self) -> CpuUse {
        let after = snapshot(&self.groups);
        let seconds = self.started.elapsed().as_secs_f64();
        let machine_after = machine_ticks();
        let cpu_seconds = delta(&self.before, &after);
        let busy = (machine_after.0 - self.machine_before.0) / TICKS;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        CpuUse {
            seconds,
            cpu_seconds,
            machine_busy_cores: busy / seconds,
            cores,
        }
    }
}

/// Ticks per process of each group (`0` stands for this process's waited-for children).
type Snapshot = BTreeMap<String, BTreeMap<u32, f64>>;

fn snapshot(groups: &[(String, Vec<Who>)]) -> Snapshot {
    groups
        .iter()
        .map(|(name, members)| {
            let mut ticks = BTreeMap::new();
            for who in members {
                match who {
                    Who::Pid(pid) => ticks.extend(process_ticks(*pid).map(|t| (*pid, t))),
                    Who::Comm(comm) => ticks.extend(
                        pids_named(comm)
                            .into_iter()
                            .filter_map(|pid| Some((pid, process_ticks(pid)?))),
                    ),
                    Who::Tree(root) => ticks.extend(
                        descendants(*root)
                            .into_iter()
                            .filter_map(|pid| Some((pid, process_ticks(pid)?))),
                    ),
                    Who::WaitedChildren => ticks.extend(waited_children_ticks().map(|t| (0, t))),
                }
            }
            (name.clone(), ticks)
        })
        .collect()
}

/// CPU seconds per group between two snapshots: per process, so that a process that exited
/// (say a short-lived `rabbitmqctl`, also named `beam.smp`) does not count negatively, and one
/// that started in between counts in full.
fn delta(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, pids)| {
            let earlier = before.get(name);
            let ticks: f64 = pids
                .iter()
                .map(|(pid, t)| {
                    let start = earlier.and_then(|e| e.get(pid)).copied().unwrap_or(0.0);
                    (t - start).max(0.0)
                })
                .sum();
            (name.clone(), ticks / TICKS)
        })
        .collect()
}

/// utime + stime of a process (all its threads), in ticks.
fn process_ticks(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn pids_named(comm: &str) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm))
        .collect()
}

/// cutime + cstime of this process, in ticks.
fn waited_children_ticks() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let cutime: f64 = fields.get(13)?.parse().ok()?;
    let cstime: f64 = fields.get(14)?.parse().ok()?;
    Some(cutime + cstime)
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and every process below it. CPU of children that already exited and were waited
/// for is in the parent's cutime, which is not counted: measure while they run.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// (busy, total) ticks of the whole machine from the `cpu` line of `/proc/stat`.
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let values: Vec<f64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: f64 = values.iter().take(8).sum();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}
