//! Baton as the suite runs and breaks it: started (again) within the run's deadline, killed,
//! checked for exits the suite did not cause, and stopped for the final cleanup pass.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use baton_testkit::BatonProcess;

use crate::world::World;

/// How long Baton may take to answer `/healthz` after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

impl World {
    /// Starts Baton and waits until it answers `/healthz`.
    pub async fn start_baton(&self) -> anyhow::Result<()> {
        let within = READY_TIMEOUT.min(self.deadline.saturating_duration_since(Instant::now()));
        let mut baton = self.baton.lock().await;
        baton
            .as_mut()
            .context("Baton is gone")?
            .start_within(Some(within))
            .await
    }

    /// SIGKILL: no graceful shutdown, nothing flushed. Returns the pid killed.
    pub async fn kill_baton(&self) -> anyhow::Result<u32> {
        let mut baton = self.baton.lock().await;
        baton.as_mut().context("Baton is gone")?.kill().await
    }

    pub async fn baton_url(&self) -> anyhow::Result<String> {
        let baton = self.baton.lock().await;
        Ok(baton.as_ref().context("Baton is gone")?.base_url())
    }

    /// Checks that Baton is still running; one that exited by itself is an incident, and is
    /// started again so the run can go on.
    pub async fn check_baton(&self) {
        let exited = self.baton.lock().await.as_mut().and_then(BatonProcess::exited);
        if let Some(status) = exited {
            self.incident(format!("Baton exited by itself ({status}); see baton.log"));
            if let Err(e) = self.start_baton().await {
                self.incident(format!("Baton could not be started again: {e:#}"));
            }
        }
    }

    /// Stops Baton with SIGTERM (graceful: in-flight requests finish or are dropped), then runs
    /// one `baton cleanup` pass with no grace period, as the scheduled pass would after its grace
    /// period: with Baton stopped nothing is in flight, so crash leftovers (temp files of uploads
    /// a SIGKILL interrupted) must go and the volume must match the rows. Returns its summary,
    /// or `None` if Baton was gone.
    pub async fn stop_and_clean_baton(&self) -> Option<anyhow::Result<String>> {
        let mut guard = self.baton.lock().await;
        let baton = guard.as_mut()?;
        // Baton's own shutdown timeout is 5 s here; this only bounds a hang.
        baton.stop(Duration::from_secs(120)).await;
        Some(cleanup_pass(baton).await)
    }
}

async fn cleanup_pass(baton: &BatonProcess) -> anyhow::Result<String> {
    let output = baton.run(&["cleanup"], &[("BATON_CLEANUP_GRACE", "0s")]).await?;
    if !output.status.success() {
        bail!(
            "baton cleanup failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
