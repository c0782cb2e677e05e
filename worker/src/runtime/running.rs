//! The attempts this process runs, keyed by job and attempt, so that control messages can reach
//! them and a second delivery of one is recognised.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Running attempts, so control messages can reach them.
pub(super) type Running = Arc<Mutex<HashMap<(Uuid, u32), CancellationToken>>>;

/// An attempt's place in the running map, removed when its processing ends, however it ends.
pub(super) struct Registration {
    running: Running,
    key: (Uuid, u32),
    pub(super) cancel: CancellationToken,
}

impl Registration {
    /// Registers the attempt, or returns `None` if this process is already running it.
    pub(super) fn claim(running: &Running, key: (Uuid, u32)) -> Option<Self> {
        let mut map = running.lock().expect("running map lock");
        if map.contains_key(&key) {
            return None;
        }
        let cancel = CancellationToken::new();
        map.insert(key, cancel.clone());
        Some(Self {
            running: Arc::clone(running),
            key,
            cancel,
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.running.lock().expect("running map lock").remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_claimed_once_until_its_processing_ends() {
        let running = Running::default();
        let key = (Uuid::nil(), 1);
        let first = Registration::claim(&running, key).expect("the first delivery runs");
        assert!(Registration::claim(&running, key).is_none(), "a second copy is refused");
        assert!(
            Registration::claim(&running, (Uuid::nil(), 2)).is_some(),
            "another attempt is not a copy"
        );
        drop(first);
        assert!(
            Registration::claim(&running, key).is_some(),
            "free again once the first ended"
        );
    }
}
