//! The single-instance backend: keys in process memory.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use super::{ApiKeyRecord, ApiKeyStore, Inserted, StoreError, StoreFuture};

/// Keeps the keys in process memory: for tests and single-process deployments that accept
/// losing every key at exit. One lock guards all keys, so each method is atomic.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bulwark::store::StoreError> {
/// use bulwark::api_key::{ApiKeyStore, Inserted, MemoryApiKeyStore};
/// # use bulwark::api_key::{ApiKeyHasher, ApiKeyRecord};
/// # let hasher = ApiKeyHasher::new(&[7; 32]);
/// # let record = ApiKeyRecord {
/// #     id: uuid::Uuid::new_v4(), subject: "42".into(), name: "ci".into(),
/// #     prefix: "AbCd1234".into(), hash: hasher.hash("bwk_..."), roles: vec![],
/// #     created_at: 0, expires_at: None, last_used_at: None,
/// # };
/// let store = MemoryApiKeyStore::new();
/// assert_eq!(store.insert(&record, 20).await?, Inserted::Stored);
/// assert_eq!(store.find_by_prefix("AbCd1234").await?.map(|r| r.id), Some(record.id));
/// assert!(store.delete(record.id, "42").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryApiKeyStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<uuid::Uuid, ApiKeyRecord>,
    by_prefix: HashMap<String, uuid::Uuid>,
}

impl MemoryApiKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::new("poisoned lock"))
    }
}

impl Inner {
    fn of<'a>(&'a self, subject: &'a str) -> impl Iterator<Item = &'a ApiKeyRecord> + 'a {
        self.by_id.values().filter(move |r| r.subject == subject)
    }

    fn remove(&mut self, id: uuid::Uuid) -> Option<ApiKeyRecord> {
        let record = self.by_id.remove(&id)?;
        self.by_prefix.remove(&record.prefix);
        Some(record)
    }
}

impl ApiKeyStore for MemoryApiKeyStore {
    fn insert<'a>(
        &'a self,
        record: &'a ApiKeyRecord,
        max_per_subject: u32,
    ) -> StoreFuture<'a, Inserted> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            let held = inner.of(&record.subject).count();
            if held >= usize::try_from(max_per_subject).unwrap_or(usize::MAX) {
                return Ok(Inserted::LimitReached);
            }
            if inner.by_prefix.contains_key(&record.prefix) || inner.by_id.contains_key(&record.id)
            {
                return Ok(Inserted::Conflict);
            }
            inner.by_prefix.insert(record.prefix.clone(), record.id);
            inner.by_id.insert(record.id, record.clone());
            Ok(Inserted::Stored)
        })
    }

    fn find_by_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>> {
        Box::pin(async move {
            let inner = self.lock()?;
            Ok(inner
                .by_prefix
                .get(prefix)
                .and_then(|id| inner.by_id.get(id))
                .cloned())
        })
    }

    fn list<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<ApiKeyRecord>> {
        Box::pin(async move {
            let mut keys: Vec<_> = self.lock()?.of(subject).cloned().collect();
            keys.sort_by_key(|r| (r.created_at, r.id));
            Ok(keys)
        })
    }

    fn count<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move { Ok(self.lock()?.of(subject).count() as u64) })
    }

    fn delete<'a>(&'a self, id: uuid::Uuid, subject: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            if inner.by_id.get(&id).is_some_and(|r| r.subject == subject) {
                inner.remove(id);
                return Ok(true);
            }
            Ok(false)
        })
    }

    fn delete_subject<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            let ids: Vec<_> = inner.of(subject).map(|r| r.id).collect();
            for id in &ids {
                inner.remove(*id);
            }
            Ok(ids.len() as u64)
        })
    }

    fn touch(&self, id: uuid::Uuid, at: i64) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            match inner.by_id.get_mut(&id) {
                Some(record) if record.last_used_at.is_none_or(|last| last < at) => {
                    record.last_used_at = Some(at);
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_api_key_store_conforms() {
        crate::testing::api_key_store_conformance(Arc::new(MemoryApiKeyStore::new())).await;
    }
}
