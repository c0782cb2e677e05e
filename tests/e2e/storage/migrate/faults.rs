//! The source store stopped mid-migration: the command fails clearly, and once the store is
//! back a rerun resumes and verifies every copy.

use std::{process::Stdio, time::Duration};

use baton_testkit::object_stores::{Backend, Emulator};

use super::*;

const MIB: usize = 1 << 20;

#[tokio::test]
async fn azure_stopped_mid_migration_fails_the_command_clearly_and_a_rerun_after_restart_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut emulator = Emulator::start(Backend::Azure, dir.path()).expect("start Azurite");
    assert!(emulator.keeps_data_across_restart());
    let source = emulator.test_store().await.expect("a container");
    let target = Backend::Volume.test_store().await.expect("a volume");
    let pair = StorePair::on(source, target).await;
    let target = store_name(&pair.target);
    let app = pair.spawn_app(&pair.source).await;
    let mut files = Vec::new();
    for seed in 0..4 {
        files.push(submit(&app.http, &app.base, bytes_of(20 + seed, MIB)).await);
    }

    let child = pair
        .migrate_command(&pair.source, ["--to", &pair.target.url, "--execute", "--rate", "1MiB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baton storage migrate");
    let started = eventually(Duration::from_secs(60), || async {
        count_in(&pair.db, &target).await >= 1
    })
    .await;
    assert!(started, "the first blob switched");
    emulator.stop().expect("stop Azurite");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the command gives up")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the command fails while its source is down");
    assert!(
        stderr.contains("run the same command again") && stderr.contains(&store_name(&pair.source)),
        "{stderr}"
    );
    assert!(count_in(&pair.db, &target).await < 4);

    emulator.restart().await.expect("restart Azurite");
    let output = pair
        .migrate_command(&pair.source, ["--to", &pair.target.url, "--execute"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(count_in(&pair.db, &target).await, 4);
    assert_eq!(migrations(&pair.db).await, (1, 0));
    assert_eq!(StorePair::blob_keys(&pair.target).await.len(), 4);
    assert_downloads(&app, &files).await;
}
