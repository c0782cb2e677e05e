//! A migration's progress: a bar on a terminal, log lines otherwise.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::Outcome;
use crate::cleanup::human_bytes;

/// Time between progress lines when there is no bar.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    total_blobs: u64,
    total_bytes: u64,
    blobs: u64,
    bytes: u64,
    logged: Instant,
}

impl Progress {
    pub fn new(bar: bool, total_blobs: i64, total_bytes: i64) -> Self {
        let total_blobs = u64::try_from(total_blobs).unwrap_or_default();
        let total_bytes = u64::try_from(total_bytes).unwrap_or_default();
        let bar = bar.then(|| {
            let bar = ProgressBar::new(total_bytes);
            let style = ProgressStyle::with_template(
                "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        if bar.is_none() {
            tracing::info!(
                blobs = total_blobs,
                bytes = total_bytes,
                "moving {total_blobs} blobs, {}",
                human_bytes(total_bytes)
            );
        }
        Self {
            bar,
            total_blobs,
            total_bytes,
            blobs: 0,
            bytes: 0,
            logged: Instant::now(),
        }
    }

    pub fn moved(&mut self, size: u64) {
        self.blobs += 1;
        self.bytes += size;
        match &self.bar {
            Some(bar) => {
                // Stragglers may take the count past the first estimate.
                if self.bytes > self.total_bytes {
                    self.total_bytes = self.bytes;
                    bar.set_length(self.total_bytes);
                }
                bar.set_position(self.bytes);
                bar.set_message(format!("{} blobs", self.blobs));
            }
            None if self.logged.elapsed() >= LOG_EVERY => {
                self.logged = Instant::now();
                tracing::info!(
                    "moved {}/{} blobs, {} of {}",
                    self.blobs,
                    self.total_blobs.max(self.blobs),
                    human_bytes(self.bytes),
                    human_bytes(self.total_bytes.max(self.bytes))
                );
            }
            None => {}
        }
    }

    pub fn finish(&self, outcome: &Outcome) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        tracing::info!(
            moved = outcome.moved,
            copied = outcome.copied,
            bytes = outcome.bytes,
            passes = outcome.passes,
            "every blob is in the target; migration finished"
        );
    }
}
