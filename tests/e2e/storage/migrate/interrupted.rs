//! Killed at any moment, a rerun finishes: the `baton` process killed mid-copy, a run stopped
//! between a verified copy and its switch (the copy is reused), and a damaged copy already in
//! the target (never trusted: written again).

use std::{ops::ControlFlow, process::Stdio, sync::Arc, time::Duration};

use baton::migration::{MigrationError, MoveHook, MoveStep};
use baton_testkit::object_stores::Backend;
use futures::FutureExt;
use object_store::{ObjectStoreExt, PutPayload, path::Path as Key};

use super::*;

const MIB: usize = 1 << 20;

async fn submit_several(app: &TestApp, n: u64, size: usize) -> Vec<Submitted> {
    let mut files = Vec::new();
    for seed in 0..n {
        files.push(submit(&app.http, &app.base, bytes_of(10 + seed, size)).await);
    }
    files
}

#[tokio::test]
async fn the_migrate_command_killed_midway_finishes_on_a_rerun_with_nothing_lost() {
    let pair = StorePair::new(Backend::Volume, Backend::S3).await;
    let target = store_name(&pair.target);
    let app = pair.spawn_app(&pair.source).await;
    let files = submit_several(&app, 4, MIB).await;

    // 1 MiB/s for copy and read-back: about two seconds per blob.
    let mut child = pair
        .migrate_command(&pair.source, ["--to", &pair.target.url, "--execute", "--rate", "1MiB"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start baton storage migrate");
    let started = eventually(Duration::from_secs(60), || async {
        count_in(&pair.db, &target).await >= 1
    })
    .await;
    assert!(started, "the first blob switched");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let moved = count_in(&pair.db, &target).await;
    assert!(moved < 4, "killed midway ({moved} of 4 moved)");
    assert_eq!(migrations(&pair.db).await, (1, 1), "the migration is still unfinished");
    assert_downloads(&app, &files).await;

    let output = pair
        .migrate_command(&pair.source, ["--to", &pair.target.url, "--execute"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("verified"), "{stdout}");
    assert_eq!(count_in(&pair.db, &target).await, 4);
    assert_eq!(migrations(&pair.db).await, (1, 0), "resumed, not started again");
    assert_eq!(StorePair::blob_keys(&pair.target).await.len(), 4);
    assert_downloads(&app, &files).await;
}

#[tokio::test]
async fn a_run_stopped_between_a_verified_copy_and_its_switch_is_finished_by_a_rerun_that_reuses_the_copy() {
    let pair = StorePair::new(Backend::Volume, Backend::Azure).await;
    let target = store_name(&pair.target);
    let app = pair.spawn_app(&pair.source).await;
    let files = submit_several(&app, 3, 300_000).await;

    let stop: MoveHook = Arc::new(|step| {
        async move {
            if step == MoveStep::Verified {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        .boxed()
    });
    let stopped = migration(&pair, &pair.source).await.with_hook(stop).execute().await;
    assert!(matches!(stopped, Err(MigrationError::Interrupted)), "{stopped:?}");
    assert_eq!(count_in(&pair.db, &target).await, 0, "no row switched");
    assert_eq!(StorePair::blob_keys(&pair.target).await.len(), 1, "one verified copy");
    assert_downloads(&app, &files).await;

    let outcome = migration(&pair, &pair.source).await.execute().await.unwrap();
    assert_eq!((outcome.moved, outcome.copied), (3, 2), "the verified copy is reused");
    assert_eq!(count_in(&pair.db, &target).await, 3);
    assert_eq!(migrations(&pair.db).await, (1, 0));
    assert_downloads(&app, &files).await;
}

#[tokio::test]
async fn a_damaged_copy_already_in_the_target_is_not_trusted_but_written_again() {
    let pair = StorePair::new(Backend::Volume, Backend::S3).await;
    let app = pair.spawn_app(&pair.source).await;
    let file = submit(&app.http, &app.base, bytes_of(7, 400_000)).await;
    // Same size, other bytes, right where the copy goes.
    let key = Key::from(format!(
        "{}/{}",
        baton_testkit::object_stores::PREFIX,
        owner_blob_key("default", &file.sha256())
    ));
    let client = pair.target.client().expect("an S3 client");
    client.put(&key, PutPayload::from(bytes_of(8, 400_000))).await.unwrap();

    let outcome = migration(&pair, &pair.source).await.execute().await.unwrap();
    assert_eq!((outcome.moved, outcome.copied), (1, 1), "{outcome:?}");
    let stored = client.get(&key).await.unwrap().bytes().await.unwrap();
    assert!(
        stored.as_ref() == file.bytes.as_slice(),
        "the target holds the real bytes"
    );
    assert_downloads(&app, &[file]).await;
}
