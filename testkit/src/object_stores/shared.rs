//! One emulator of each kind per test binary, started on first use and shared by its tests
//! (each test works in a bucket or container of its own). It is never stopped by a test; it
//! dies with the test binary (see `emulator_process`). Its files live in
//! `$TMPDIR/baton-emulators-{pid}`; those of binaries that are gone are removed at first use.

use std::path::PathBuf;

use anyhow::Context;
use tokio::sync::OnceCell;

use super::{Backend, Emulator};

static SHARED_S3: OnceCell<Emulator> = OnceCell::const_new();
static SHARED_AZURE: OnceCell<Emulator> = OnceCell::const_new();

/// The emulator of `backend` (S3 or Azure) that this test binary shares, started if needed.
pub async fn shared_emulator(backend: Backend) -> anyhow::Result<&'static Emulator> {
    let cell = match backend {
        Backend::S3 => &SHARED_S3,
        Backend::Azure => &SHARED_AZURE,
        Backend::Volume => anyhow::bail!("a volume has no emulator"),
    };
    cell.get_or_try_init(|| async move {
        tokio::task::spawn_blocking(move || {
            remove_dirs_of_gone_processes();
            let dir = own_dir().join(backend.name());
            Emulator::start(backend, &dir)
        })
        .await
        .context("starting a shared emulator")?
    })
    .await
}

const DIR_PREFIX: &str = "baton-emulators-";

fn own_dir() -> PathBuf {
    std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()))
}

fn remove_dirs_of_gone_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !process_exists(pid) {
            // Another binary may be removing it at the same moment: either way it goes.
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
}

fn process_exists(pid: u32) -> bool {
    // Signal 0 checks existence only; EPERM would mean it exists under another user.
    match crate::process::send_signal(pid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() != Some(libc::ESRCH),
    }
}
