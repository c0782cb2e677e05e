//! Steps 3 and 4 visit every store this replica knows: the configured one, the volume if it is
//! mounted, and every store a row names (as its store, or as the store a migration moved it
//! from). A store this replica cannot reach, or that fails during its turn, is left for a later
//! pass (or another replica) and the others are still visited.

use std::collections::BTreeSet;

use super::{Cleaner, CleanupError, CleanupReport, Mode};
use crate::{
    db,
    storage::{Backend, StoreName, Unavailable},
};

impl Cleaner {
    pub(super) async fn reconcile_stores(&self, mode: Mode, report: &mut CleanupReport) -> Result<(), CleanupError> {
        for store in self.stores_to_visit().await? {
            self.checkpoint.check()?;
            let backend = match self.storage.backend(&store) {
                Ok(backend) => backend,
                Err(e) => {
                    tracing::warn!(%store, error = %e, "blob rows name a store this replica cannot reach; not checking it");
                    continue;
                }
            };
            let visited = match &backend {
                Backend::Volume(volume) => self.reconcile_volume(volume, mode, report).await,
                Backend::Object(object) => self.reconcile_object_store(object, mode, report).await,
            };
            match visited {
                Err(CleanupError::Storage(e)) if Unavailable::find(&e).is_some() => {
                    tracing::warn!(%store, error = %e, "the store failed; the next pass will check it again");
                }
                other => other?,
            }
        }
        Ok(())
    }

    async fn stores_to_visit(&self) -> Result<BTreeSet<StoreName>, CleanupError> {
        let mut stores = BTreeSet::from([self.storage.configured().name()]);
        if self.storage.volume().is_some() {
            stores.insert(StoreName::volume());
        }
        for name in db::blobs::stores_named(&self.db).await? {
            stores.insert(StoreName::from_stored(&name));
        }
        Ok(stores)
    }
}
