//! `--rate`: caps the bytes a migration reads and writes per second, leaving bandwidth for live
//! uploads and jobs.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Throttle {
    rate: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    /// `rate` bytes per second; `None` for no limit.
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            rate: rate.filter(|r| *r > 0),
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `n` more bytes and waits until the average since the start is within the rate.
    pub async fn take(&mut self, n: usize) {
        self.bytes += n as u64;
        if let Some(rate) = self.rate {
            let due = self.started + Duration::from_secs_f64(self.bytes as f64 / rate as f64);
            tokio::time::sleep_until(due).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_throttle_holds_the_average_to_its_rate() {
        let mut throttle = Throttle::new(Some(1000));
        let start = Instant::now();
        for _ in 0..10 {
            throttle.take(500).await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        let mut unlimited = Throttle::new(None);
        let start = Instant::now();
        unlimited.take(1 << 30).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
