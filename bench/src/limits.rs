//! The limits Baton is compared with, measured on the same machine in the same run: hashing
//! speed on one core, sequential disk writes, the volume's small-file durability floor, and
//! Postgres commit rates.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use md5::Md5;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use crate::stats::{Latency, mb_per_s, per_s};

/// Random bytes (fastrand: fast, not cryptographic; neither hashing nor ext4 cares).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = vec![0_u8; len];
    for chunk in out.chunks_mut(8) {
        let word = rng.u64(..).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    out
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct HashSpeeds {
    pub bytes: u64,
    pub md5_mb_s: f64,
    pub sha256_mb_s: f64,
}

/// Single-core MD5 and SHA-256 throughput over `total` bytes (a 16 MiB buffer hashed again and
/// again, in chunks of the size uploads arrive in).
pub fn hash_speeds(total: u64) -> HashSpeeds {
    const BUFFER: usize = 16 << 20;
    const CHUNK: usize = 256 << 10;
    let buffer = random_bytes(BUFFER, 1);
    let rounds = (total / BUFFER as u64).max(1);
    let bytes = rounds * BUFFER as u64;

    let started = Instant::now();
    let mut md5 = Md5::new();
    for _ in 0..rounds {
        for chunk in buffer.chunks(CHUNK) {
            md5.update(chunk);
        }
    }
    std::hint::black_box(md5.finalize());
    let md5_elapsed = started.elapsed();

    let started = Instant::now();
    let mut sha = Sha256::new();
    for _ in 0..rounds {
        for chunk in buffer.chunks(CHUNK) {
            sha.update(chunk);
        }
    }
    std::hint::black_box(sha.finalize());
    let sha_elapsed = started.elapsed();

    HashSpeeds {
        bytes,
        md5_mb_s: mb_per_s(bytes, md5_elapsed),
        sha256_mb_s: mb_per_s(bytes, sha_elapsed),
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DiskWrite {
    pub bytes: u64,
    pub seconds: f64,
    pub mb_s: f64,
}

/// A plain sequential write of `bytes` to a new file in `dir` through 1 MiB writes, then
/// fdatasync; timed to the end of the sync. The file is left for the run's final clean-up:
/// deleting files here makes the next measurements slower (see `volume_floor`).
pub fn sequential_write(dir: &Path, bytes: u64) -> anyhow::Result<DiskWrite> {
    const WRITE: usize = 1 << 20;
    let block = random_bytes(4 << 20, 2);
    let path = dir.join(format!("seqwrite-{}.bin", std::process::id()));
    let started = Instant::now();
    let result = (|| -> std::io::Result<()> {
        let mut file = File::create_new(&path)?;
        let mut written = 0_u64;
        let mut offset = 0_usize;
        while written < bytes {
            let len = (WRITE as u64).min(bytes - written) as usize;
            if offset + len > block.len() {
                offset = 0;
            }
            file.write_all(&block[offset..offset + len])?;
            offset += len;
            written += len as u64;
        }
        file.sync_data()
    })();
    let elapsed = started.elapsed();
    result.with_context(|| format!("sequential write to {}", path.display()))?;
    Ok(DiskWrite {
        bytes,
        seconds: elapsed.as_secs_f64(),
        mb_s: mb_per_s(bytes, elapsed),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    pub threads: usize,
    pub ops: usize,
    pub seconds: f64,
    pub ops_s: f64,
    pub latency: Latency,
}

/// The volume's durability floor for small files, as Baton stores them: create a temp file,
/// write 4 KiB, fsync, rename into a fanned-out directory, fsync that directory. `threads`
/// threads for `duration`, under `root` (the storage directory). With `new_dirs`, every file
/// also gets a new leaf directory (mkdir + fsync of its parent), as Baton's
/// `blobs/<owner>/<aa>/<bb>/` layout does for almost every small upload until the 65,536 leaf
/// directories exist.
///
/// The files stay until the run's final clean-up, as Baton's blobs do. Deleting thousands of
/// files slows what follows for a while (the ext4 volume here is mounted with online `discard`,
/// and for 30 s new inodes skip recently deleted ones, which costs a scan per file created).
pub fn volume_floor(root: &Path, threads: usize, duration: Duration, new_dirs: bool) -> anyhow::Result<Floor> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let base = root.join(format!(
        "blobs/floor-{}{}",
        RUNS.fetch_add(1, Ordering::Relaxed),
        if new_dirs { "-newdirs" } else { "" }
    ));
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    for aa in 0..256 {
        std::fs::create_dir_all(base.join(format!("{aa:02x}")))?;
    }
    sync_dir(&base)?;
    let payload = Arc::new(random_bytes(4096, 3));
    let started = Instant::now();
    let deadline = started + duration;
    let counter = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let (base, tmp, payload, counter) = (base.clone(), tmp.clone(), Arc::clone(&payload), Arc::clone(&counter));
            std::thread::spawn(move || -> std::io::Result<Vec<Duration>> {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    one_durable_file(&base, &tmp, thread, n, &payload, new_dirs)?;
                    latencies.push(t0.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(samples)) => latencies.extend(samples),
            Ok(Err(e)) => failure = Some(anyhow::Error::from(e)),
            Err(_) => failure = Some(anyhow::anyhow!("a floor thread panicked")),
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = failure {
        return Err(e.context("volume durability floor"));
    }
    Ok(Floor {
        threads,
        ops: latencies.len(),
        seconds: elapsed.as_secs_f64(),
        ops_s: per_s(latencies.len(), elapsed),
        latency: Latency::from_durations(&latencies),
    })
}

fn one_durable_file(
    base: &Path,
    tmp: &Path,
    thread: usize,
    n: u64,
    payload: &[u8],
    new_dir: bool,
) -> std::io::Result<()> {
    let name = format!("{n:016x}-{thread}");
    let floor = base.file_name().map(|f| f.to_string_lossy()).unwrap_or_default();
    let temp: PathBuf = tmp.join(format!("{floor}-{name}.part"));
    let mut file = File::create_new(&temp)?;
    file.write_all(payload)?;
    file.sync_all()?;
    drop(file);
    let parent = base.join(format!("{:02x}", n % 256));
    let dir = if new_dir {
        let dir = parent.join(&name);
        std::fs::create_dir(&dir)?;
        sync_dir(&parent)?;
        dir
    } else {
        parent
    };
    std::fs::rename(&temp, dir.join(&name))?;
    sync_dir(&dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Postgres commit rate: `connections` connections each running single-row INSERTs (one per
/// transaction) into a fresh table for `duration`. When the server refuses that many connections
/// (it is shared), the floor is measured with as many as it gave; `threads` says how many.
pub async fn postgres_floor(database_url: &str, connections: usize, duration: Duration) -> anyhow::Result<Floor> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        match PgConnection::connect(database_url).await {
            Ok(conn) => conns.push(conn),
            Err(e) if conns.is_empty() => return Err(e).context("connecting to Postgres"),
            Err(e) => {
                eprintln!("  postgres floor: only {} connections available ({e})", conns.len());
                break;
            }
        }
    }
    let first = conns.first_mut().expect("at least one connection");
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_floor (
             id BIGSERIAL PRIMARY KEY, job UUID NOT NULL, payload TEXT NOT NULL,
             created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&mut *first)
    .await?;
    let threads = conns.len();
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    sqlx::query("INSERT INTO bench_floor (job, payload) VALUES ($1, $2)")
                        .bind(uuid::Uuid::now_v7())
                        .bind("a row about the size of a job's metadata")
                        .execute(&mut conn)
                        .await?;
                    latencies.push(t0.elapsed());
                }
                conn.close().await?;
                Ok::<_, sqlx::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    Ok(Floor {
        threads,
        ops: latencies.len(),
        seconds: elapsed.as_secs_f64(),
        ops_s: per_s(latencies.len(), elapsed),
        latency: Latency::from_durations(&latencies),
    })
}
