//! The cache's bookkeeping, without any I/O: which files it holds, which are in use, how many
//! bytes are taken (files plus downloads under way), and which files to evict for a new one.

use std::collections::HashMap;

/// A cached file.
#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    /// The index's clock when the file was last handed out or released: smaller is older.
    last_used: u64,
    /// How many running jobs hold the file; a held file is never evicted.
    pins: u32,
}

/// What [`Index::pin`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// Cached, and now pinned once more.
    Hit,
    /// Cached with another size than the one asked for (not pinned).
    OtherSize(u64),
    /// Not cached.
    Miss,
}

/// Room could not be made: files in use and downloads under way fill the bound.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NoRoom {
    pub(super) wanted: u64,
    pub(super) held: u64,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    entries: HashMap<String, Entry>,
    /// Bytes of cached files plus bytes reserved by downloads under way.
    used: u64,
    clock: u64,
}

impl Index {
    /// Adds a file found on disk when the cache opens, unpinned and more recently used than the
    /// files added before it (so add them oldest first).
    pub(super) fn insert_found(&mut self, sha256: String, size: u64) {
        self.clock += 1;
        let entry = Entry {
            size,
            last_used: self.clock,
            pins: 0,
        };
        if let Some(previous) = self.entries.insert(sha256, entry) {
            self.used -= previous.size;
        }
        self.used += size;
    }

    /// Pins the file if it is cached with this size.
    pub(super) fn pin(&mut self, sha256: &str, size: u64) -> Lookup {
        self.clock += 1;
        match self.entries.get_mut(sha256) {
            Some(entry) if entry.size == size => {
                entry.pins += 1;
                entry.last_used = self.clock;
                Lookup::Hit
            }
            Some(entry) => Lookup::OtherSize(entry.size),
            None => Lookup::Miss,
        }
    }

    /// Releases one pin; the file becomes the most recently used.
    pub(super) fn unpin(&mut self, sha256: &str) {
        self.clock += 1;
        if let Some(entry) = self.entries.get_mut(sha256) {
            entry.pins = entry.pins.saturating_sub(1);
            entry.last_used = self.clock;
        }
    }

    /// Forgets a file (gone from disk, or about to be replaced), pinned or not.
    pub(super) fn forget(&mut self, sha256: &str) {
        if let Some(entry) = self.entries.remove(sha256) {
            self.used -= entry.size;
        }
    }

    /// Reserves `size` bytes for a download, within `max` bytes in all, evicting the least
    /// recently used unpinned files as needed. Returns the evicted files (whose bytes must be
    /// deleted) or, when even evicting every unpinned file would not make room, changes nothing.
    pub(super) fn reserve(&mut self, size: u64, max: u64) -> Result<Vec<String>, NoRoom> {
        let mut candidates: Vec<(&String, &Entry)> = self.entries.iter().filter(|(_, e)| e.pins == 0).collect();
        candidates.sort_by_key(|(_, e)| e.last_used);
        let mut used = self.used;
        let mut victims = Vec::new();
        for (sha256, entry) in candidates {
            if used.saturating_add(size) <= max {
                break;
            }
            used -= entry.size;
            victims.push(sha256.clone());
        }
        if used.saturating_add(size) > max {
            return Err(NoRoom {
                wanted: size,
                held: used,
            });
        }
        for sha256 in &victims {
            self.forget(sha256);
        }
        self.used += size;
        Ok(victims)
    }

    /// Turns a reservation into a cached file (unpinned, most recently used).
    pub(super) fn commit(&mut self, sha256: String, size: u64) {
        self.clock += 1;
        self.used -= size;
        let entry = Entry {
            size,
            last_used: self.clock,
            pins: 0,
        };
        if let Some(previous) = self.entries.insert(sha256, entry) {
            self.used -= previous.size;
        }
        self.used += size;
    }

    /// Gives back a reservation whose download failed.
    pub(super) fn release(&mut self, size: u64) {
        self.used -= size;
    }

    /// Files over `max`, least recently used first, that may go (unpinned): used when the cache
    /// opens with more on disk than its bound.
    pub(super) fn shrink_to(&mut self, max: u64) -> Vec<String> {
        self.reserve(0, max).unwrap_or_default()
    }

    /// Bytes taken: cached files plus reservations.
    pub(super) fn used(&self) -> u64 {
        self.used
    }

    /// How many files are cached.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> String {
        format!("{n:064x}")
    }

    fn cached(index: &mut Index, n: u8, size: u64, max: u64) -> Vec<String> {
        let evicted = index.reserve(size, max).expect("room");
        index.commit(sha(n), size);
        evicted
    }

    #[test]
    fn the_least_recently_used_unpinned_files_are_evicted_first() {
        let mut index = Index::default();
        for n in 1..=3 {
            assert!(cached(&mut index, n, 10, 30).is_empty());
        }
        // Use 1 again: 2 is now the oldest.
        assert_eq!(index.pin(&sha(1), 10), Lookup::Hit);
        index.unpin(&sha(1));
        assert_eq!(cached(&mut index, 4, 15, 30), [sha(2), sha(3)]);
        assert_eq!(index.used(), 25);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn pinned_files_are_kept_and_no_room_changes_nothing() {
        let mut index = Index::default();
        cached(&mut index, 1, 10, 20);
        cached(&mut index, 2, 10, 20);
        assert_eq!(index.pin(&sha(1), 10), Lookup::Hit);
        assert_eq!(cached(&mut index, 3, 10, 20), [sha(2)]);
        assert_eq!(index.pin(&sha(3), 10), Lookup::Hit);
        assert_eq!(index.reserve(5, 20), Err(NoRoom { wanted: 5, held: 20 }));
        assert_eq!((index.used(), index.len()), (20, 2));
        index.unpin(&sha(1));
        assert_eq!(index.reserve(5, 20), Ok(vec![sha(1)]));
    }

    #[test]
    fn a_failed_download_gives_its_reservation_back() {
        let mut index = Index::default();
        index.reserve(10, 10).unwrap();
        assert_eq!(index.reserve(1, 10), Err(NoRoom { wanted: 1, held: 10 }));
        index.release(10);
        assert_eq!(index.used(), 0);
        assert_eq!(index.pin(&sha(1), 10), Lookup::Miss);
    }

    #[test]
    fn a_file_asked_for_with_another_size_is_not_a_hit() {
        let mut index = Index::default();
        cached(&mut index, 1, 10, 100);
        assert_eq!(index.pin(&sha(1), 11), Lookup::OtherSize(10));
    }

    #[test]
    fn files_found_over_the_bound_are_shrunk_oldest_first() {
        let mut index = Index::default();
        for n in 1..=4 {
            index.insert_found(sha(n), 10);
        }
        assert_eq!(index.shrink_to(25), [sha(1), sha(2)]);
        assert_eq!(index.used(), 20);
    }
}
