//! Each direction: jobs submitted before, during and after; every file readable throughout;
//! the old copy of a blob that a queued job's message names kept until that job finishes.

use std::{
    ops::ControlFlow,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use baton::{
    cleanup::{Cleaner, CleanupConfig, PassOutcome, Retention},
    migration::{MoveHook, MoveStep},
};
use baton_testkit::object_stores::Backend;
use futures::FutureExt;

use super::*;

/// What the hook does at the first switch: proves the write store follows the migration
/// (new uploads land in the target, probing until one does) and that files stay readable.
#[derive(Clone)]
struct During {
    http: reqwest::Client,
    base: String,
    db: PgPool,
    target: String,
    reading: Submitted,
    submitted: Arc<Mutex<Vec<Submitted>>>,
    done: Arc<AtomicBool>,
}

impl During {
    async fn first_switch(self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let got = download(&self.http, &self.base, &self.reading.file).await;
        assert!(
            got == self.reading.bytes,
            "a file reads back in the middle of the migration"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for seed in 100.. {
            let probe = submit(&self.http, &self.base, bytes_of(seed, 150_000)).await;
            let (store, _) = placement(&self.db, &probe.sha256()).await;
            self.submitted.lock().unwrap().push(probe);
            if store == self.target {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "new uploads go to the target soon after the migration starts"
            );
        }
    }

    fn hook(&self) -> MoveHook {
        let during = self.clone();
        Arc::new(move |step| {
            let during = during.clone();
            async move {
                if step == MoveStep::Switched {
                    during.first_switch().await;
                }
                ControlFlow::Continue(())
            }
            .boxed()
        })
    }
}

async fn moves_every_blob_and_keeps_old_copies_for_queued_jobs(from: Backend, to: Backend) {
    let pair = StorePair::new(from, to).await;
    let (source, target) = (store_name(&pair.source), store_name(&pair.target));
    let app = pair.spawn_app(&pair.source).await;

    // Before: one job done (nothing needs its old copy), one queued with its message out.
    let worker = pair.spawn_worker();
    let finished = submit(&app.http, &app.base, bytes_of(1, 300_000)).await;
    app.wait_for_status(&finished.job, "succeeded").await;
    worker.stop().await;
    let queued = submit(&app.http, &app.base, bytes_of(2, 2_500_000)).await;
    wait_dispatched(&pair.db, &queued.job).await;

    let during = During {
        http: app.http.clone(),
        base: app.base.clone(),
        db: pair.db.clone(),
        target: target.clone(),
        reading: queued.clone(),
        submitted: Arc::default(),
        done: Arc::default(),
    };
    let outcome = migration(&pair, &pair.source)
        .await
        .with_hook(during.hook())
        .execute()
        .await
        .expect("the migration finishes");
    let probes = during.submitted.lock().unwrap().clone();
    assert!(!probes.is_empty());

    assert_eq!(
        count_in(&pair.db, &target).await,
        2 + probes.len() as i64,
        "{outcome:?}"
    );
    assert_eq!(migrations(&pair.db).await, (1, 0), "recorded and finished");
    assert!(outcome.moved >= 2, "{outcome:?}");
    // The finished job's old copy went at once; the queued job's stays, as its message names it.
    assert_eq!(placement(&pair.db, &finished.sha256()).await, (target.clone(), None));
    assert_eq!(
        placement(&pair.db, &queued.sha256()).await,
        (target.clone(), Some(source.clone()))
    );
    let in_source = StorePair::blob_keys(&pair.source).await;
    assert!(
        in_source.contains(&owner_blob_key("default", &queued.sha256())),
        "{in_source:?}"
    );
    assert!(
        !in_source.contains(&owner_blob_key("default", &finished.sha256())),
        "{in_source:?}"
    );
    let in_target = StorePair::blob_keys(&pair.target).await;
    assert_eq!(in_target.len(), 2 + probes.len(), "{in_target:?}");
    assert!(
        outcome.held.iter().any(|h| h.store == source && h.jobs >= 1),
        "{:?}",
        outcome.held
    );

    // After: the setting now names the target (as the runbook's step d does).
    app.stop().await;
    let app = pair.spawn_app(&pair.target).await;
    let after = submit(&app.http, &app.base, bytes_of(3, 200_000)).await;
    assert_eq!(placement(&pair.db, &after.sha256()).await, (target.clone(), None));
    let mut all = vec![finished.clone(), queued.clone(), after.clone()];
    all.extend(probes.iter().cloned());
    assert_downloads(&app, &all).await;

    // The queued job's worker reads the copy its message named; then nothing needs it.
    let worker = pair.spawn_worker();
    for job in &all {
        app.wait_for_status(&job.job, "succeeded").await;
    }
    worker.stop().await;
    let storage = pair.storage(&pair.target).await;
    let config = CleanupConfig {
        retention: Retention::all(Duration::from_secs(3600)),
        ..CleanupConfig::default()
    };
    let PassOutcome::Done(report) = Cleaner::new(pool(&pair), storage, config).run_once().await.unwrap() else {
        panic!("the cleanup pass ran");
    };
    assert!(report.moved_copies >= 1, "{report:?}");
    assert_eq!(StorePair::blob_keys(&pair.source).await, Vec::<String>::new());
    assert_eq!(placement(&pair.db, &queued.sha256()).await, (target.clone(), None));
    assert_downloads(&app, &all).await;
}

#[tokio::test]
async fn migrating_the_volume_to_s3_moves_every_blob_while_serving_and_keeps_old_copies_for_queued_jobs() {
    moves_every_blob_and_keeps_old_copies_for_queued_jobs(Backend::Volume, Backend::S3).await;
}

#[tokio::test]
async fn migrating_the_volume_to_azure_moves_every_blob_while_serving_and_keeps_old_copies_for_queued_jobs() {
    moves_every_blob_and_keeps_old_copies_for_queued_jobs(Backend::Volume, Backend::Azure).await;
}

#[tokio::test]
async fn migrating_azure_to_the_volume_moves_every_blob_while_serving_and_keeps_old_copies_for_queued_jobs() {
    moves_every_blob_and_keeps_old_copies_for_queued_jobs(Backend::Azure, Backend::Volume).await;
}

#[tokio::test]
async fn migrating_s3_to_the_volume_moves_every_blob_while_serving_and_keeps_old_copies_for_queued_jobs() {
    moves_every_blob_and_keeps_old_copies_for_queued_jobs(Backend::S3, Backend::Volume).await;
}
