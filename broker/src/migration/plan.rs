//! `--plan`: what a migration would move, per source store, with an estimate of how long it
//! takes. Read-only.
//!
//! The estimate is measured, not assumed: up to [`SAMPLE_BYTES`] of the store's blobs are read
//! (for at most [`SAMPLE_TIME`]) and timed. A move reads each blob from its store, writes it
//! to the target and reads it back, so the estimate is three times the bytes at the measured
//! speed (which assumes the target is as fast as the source), or, when `--rate` is slower,
//! twice the bytes at that rate (it caps the copy's reads and the read-backs together).

use std::{
    fmt,
    time::{Duration, Instant},
};

use futures::StreamExt;

use super::{MigrationError, PAGE};
use crate::{
    cleanup::human_bytes,
    db::{self, blobs::moves::HeldCopies},
    storage::{Storage, StoreName},
};

pub const SAMPLE_BYTES: u64 = 16 << 20;
pub const SAMPLE_TIME: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct PlanLine {
    pub store: String,
    pub blobs: i64,
    pub bytes: i64,
    /// Rows missing their bytes: nothing to copy, left where they are.
    pub missing: i64,
    /// Bytes read from the store, and how long that took.
    pub sample: Option<(u64, Duration)>,
    pub estimate: Option<Duration>,
    /// Why there is no measurement.
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub target: StoreName,
    pub lines: Vec<PlanLine>,
    pub rate: Option<u64>,
    /// Copies earlier moves left, still kept for unfinished jobs.
    pub held: Vec<HeldCopies>,
}

/// What moving everything to `target` would take.
pub async fn plan(
    db: &sqlx::PgPool,
    storage: &Storage,
    target: &StoreName,
    rate: Option<u64>,
) -> Result<Plan, MigrationError> {
    let mut lines = Vec::new();
    for totals in db::blobs::moves::outside(db, target.as_str()).await? {
        let store = StoreName::from_stored(&totals.store);
        let (sample, note) = match measure(db, storage, &store).await {
            Ok(Some(sample)) => (Some(sample), None),
            Ok(None) => (None, Some("nothing readable to measure".to_owned())),
            Err(e) => (None, Some(format!("cannot read from it: {e}"))),
        };
        let bytes = u64::try_from(totals.bytes).unwrap_or_default();
        let estimate = estimate(bytes, sample, rate);
        lines.push(PlanLine {
            store: totals.store,
            blobs: totals.blobs,
            bytes: totals.bytes,
            missing: totals.missing,
            sample,
            estimate,
            note,
        });
    }
    Ok(Plan {
        target: target.clone(),
        lines,
        rate,
        held: db::blobs::moves::held(db).await?,
    })
}

fn estimate(bytes: u64, sample: Option<(u64, Duration)>, rate: Option<u64>) -> Option<Duration> {
    let measured = sample
        .filter(|(read, took)| *read > 0 && !took.is_zero())
        .map(|(read, took)| read as f64 / took.as_secs_f64());
    let by_speed = measured.map(|speed| 3.0 * bytes as f64 / speed);
    let by_rate = rate.filter(|r| *r > 0).map(|r| 2.0 * bytes as f64 / r as f64);
    let seconds = match (by_speed, by_rate) {
        (Some(a), Some(b)) => a.max(b),
        (a, b) => a.or(b)?,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Reads blobs of `store` (largest first) until the sample is big enough or long enough.
async fn measure(
    db: &sqlx::PgPool,
    storage: &Storage,
    store: &StoreName,
) -> Result<Option<(u64, Duration)>, MigrationError> {
    let backend = storage.backend(store)?;
    let page = db::blobs::moves::largest_in(db, store.as_str(), PAGE).await?;
    let started = Instant::now();
    let mut read = 0u64;
    for blob in page {
        let Some((owner, sha256)) = blob.parsed() else {
            continue;
        };
        let want = u64::try_from(blob.size).unwrap_or_default().min(SAMPLE_BYTES - read);
        let mut stream = backend.read(&owner, &sha256, 0, want).await?;
        while let Some(chunk) = stream.next().await {
            read += chunk?.len() as u64;
        }
        if read >= SAMPLE_BYTES || started.elapsed() >= SAMPLE_TIME {
            break;
        }
    }
    Ok((read > 0).then(|| (read, started.elapsed())))
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Moving every blob to {} (a plan: nothing was changed)", self.target)?;
        if self.lines.is_empty() {
            writeln!(f, "  nothing to move: every blob is there already")?;
        }
        let (mut blobs, mut bytes, mut total) = (0, 0, Some(Duration::ZERO));
        for line in &self.lines {
            blobs += line.blobs;
            bytes += line.bytes;
            write!(
                f,
                "  from {}: {} blobs, {}",
                line.store,
                line.blobs,
                human_bytes(u64::try_from(line.bytes).unwrap_or_default())
            )?;
            if line.missing > 0 {
                write!(f, " ({} missing their bytes: not moved)", line.missing)?;
            }
            match line.estimate {
                Some(estimate) => write!(f, "; estimate {}", human_duration(estimate))?,
                None => write!(f, "; no estimate")?,
            }
            total = total.zip(line.estimate).map(|(a, b)| a + b);
            match (line.sample, &line.note) {
                (Some((read, took)), _) => write!(f, " (read {} in {:.2} s)", human_bytes(read), took.as_secs_f64())?,
                (None, Some(note)) => write!(f, " ({note})")?,
                (None, None) => {}
            }
            writeln!(f)?;
        }
        write!(
            f,
            "  total: {blobs} blobs, {}",
            human_bytes(u64::try_from(bytes).unwrap_or_default())
        )?;
        if let Some(total) = total.filter(|_| !self.lines.is_empty()) {
            write!(f, "; estimate {}", human_duration(total))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  (estimate: each blob is read, written to the target and read back: 3 x its bytes at the speed \
             measured reading from its store, assuming the target is as fast{})",
            match self.rate {
                Some(rate) => format!("; or 2 x its bytes at --rate {}/s if that is slower", human_bytes(rate)),
                None => String::new(),
            }
        )?;
        for held in &self.held {
            writeln!(
                f,
                "  kept in {} after earlier moves: {} copies, {} \
                 (held by {} unfinished jobs; removed when they finish)",
                held.store,
                held.blobs,
                human_bytes(u64::try_from(held.bytes).unwrap_or_default()),
                held.jobs
            )?;
        }
        Ok(())
    }
}

/// `3725 s` → `1h 2m 5s`.
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{} ms", duration.as_millis().max(1));
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}
