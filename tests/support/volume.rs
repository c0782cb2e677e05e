//! The volume as tests look at it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use baton_testkit::files::list_files;

use crate::TestEnv;

impl TestEnv {
    /// Files currently in the volume's `tmp/`.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        list_files(&self.storage_dir().join("tmp"))
    }

    /// Every blob file on the volume.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        list_files(&self.storage_dir().join("blobs"))
    }

    /// Where the volume keeps the default owner's blob with this digest.
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.storage_dir()
            .join(format!("blobs/default/{}/{}/{sha256}", &sha256[0..2], &sha256[2..4]))
    }
}

/// Sets a file's modification time `ago` into the past, as if it had been left there that long.
pub fn age_file(path: &Path, ago: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open a file to age");
    file.set_modified(std::time::SystemTime::now() - ago)
        .expect("set mtime");
}
