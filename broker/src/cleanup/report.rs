//! What a pass freed and found, for logs, metrics and `baton cleanup`.

use std::fmt;

use crate::{domain::JobStatus, telemetry::metrics as m};

/// What one pass deleted and found (or, for a dry run, would delete).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// Expired jobs deleted, by the status they finished in.
    pub jobs_succeeded: u64,
    pub jobs_failed: u64,
    pub jobs_cancelled: u64,
    /// Input file rows deleted with their jobs.
    pub files: u64,
    /// Blob rows deleted because no file referred to them any more, and their files' bytes.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Blob files or objects that no row named for their store, removed after the grace period.
    pub orphans: u64,
    pub orphan_bytes: u64,
    /// Temp files and staging objects of interrupted uploads, removed after the grace period.
    pub temp_files: u64,
    pub temp_bytes: u64,
    /// Blob rows whose bytes are missing from their store or have the wrong size.
    pub missing: u64,
    /// Of those, found for the first time (marked, and their unfinished jobs told).
    pub newly_missing: u64,
    /// Files left for a later pass: an upload of the same content was committing.
    pub deferred: u64,
    /// Copies a migration left in the store a blob was moved from, removed once no unfinished
    /// job could still read them, and their bytes.
    pub moved_copies: u64,
    pub moved_copy_bytes: u64,
}

impl CleanupReport {
    pub fn jobs(&self) -> u64 {
        self.jobs_succeeded + self.jobs_failed + self.jobs_cancelled
    }

    pub fn bytes(&self) -> u64 {
        self.blob_bytes + self.orphan_bytes + self.temp_bytes + self.moved_copy_bytes
    }

    /// Nothing deleted, nothing found.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub(super) fn add_jobs(&mut self, status: JobStatus, jobs: u64) {
        match status {
            JobStatus::Succeeded => self.jobs_succeeded += jobs,
            JobStatus::Failed => self.jobs_failed += jobs,
            JobStatus::Cancelled => self.jobs_cancelled += jobs,
            JobStatus::Queued | JobStatus::Running => {}
        }
    }

    pub(super) fn record_metrics(&self) {
        let jobs = [
            (JobStatus::Succeeded, self.jobs_succeeded),
            (JobStatus::Failed, self.jobs_failed),
            (JobStatus::Cancelled, self.jobs_cancelled),
        ];
        for (status, count) in jobs {
            metrics::counter!(m::CLEANUP_JOBS, "status" => status.as_str()).increment(count);
        }
        metrics::counter!(m::CLEANUP_FILES).increment(self.files);
        metrics::counter!(m::CLEANUP_BLOBS).increment(self.blobs);
        metrics::counter!(m::CLEANUP_ORPHANS).increment(self.orphans);
        metrics::counter!(m::CLEANUP_TEMP_FILES).increment(self.temp_files);
        let bytes = [
            ("blobs", self.blob_bytes),
            ("orphans", self.orphan_bytes),
            ("temp", self.temp_bytes),
            ("moved_copies", self.moved_copy_bytes),
        ];
        for (source, count) in bytes {
            metrics::counter!(m::CLEANUP_BYTES, "source" => source).increment(count);
        }
        metrics::counter!(m::CLEANUP_MISSING).increment(self.newly_missing);
        metrics::counter!(m::CLEANUP_DEFERRED).increment(self.deferred);
    }
}

/// A summary for people, one line per kind.
impl fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  expired jobs       {:>10}  (succeeded {}, failed {}, cancelled {})",
            self.jobs(),
            self.jobs_succeeded,
            self.jobs_failed,
            self.jobs_cancelled
        )?;
        writeln!(f, "  their files        {:>10}", self.files)?;
        let freed = [
            ("blobs", self.blobs, self.blob_bytes),
            ("orphan blob files", self.orphans, self.orphan_bytes),
            ("temp files", self.temp_files, self.temp_bytes),
            ("moved-from copies", self.moved_copies, self.moved_copy_bytes),
        ];
        for (what, count, bytes) in freed {
            writeln!(f, "  {what:<18} {count:>10}  {}", human_bytes(bytes))?;
        }
        writeln!(f, "  total freed        {:>10}  {}", "", human_bytes(self.bytes()))?;
        write!(f, "  missing blob files {:>10}", self.missing)?;
        if self.newly_missing > 0 {
            write!(f, "  ({} newly found)", self.newly_missing)?;
        }
        if self.deferred > 0 {
            write!(f, "\n  left for next pass {:>10}", self.deferred)?;
        }
        Ok(())
    }
}

/// `1536` → `1.5 KiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 << 30), "10.0 GiB");
    }
}
