//! Keeping the task cache true across a write of a task, however the write ends.
//!
//! A write's caller can stop waiting (a client hung up, the worker was shut down) after
//! its statement went to the writer connection's thread: SQLite still runs it, later.
//! Clearing the cached row at that moment is not enough, since a read in between would
//! put the row back as it was before the write. So an abandoned write clears the row
//! again once the writer has run everything that was queued before it.

use std::sync::Arc;

use sqlx::Connection;
use uuid::Uuid;

use super::writer::Writer;
use crate::store::task_cache::TaskCache;

/// Taken before a write of task `id`; see the module comment.
pub(super) struct TaskWrite {
    cache: Arc<TaskCache>,
    writes: Arc<Writer>,
    id: Option<Uuid>,
    ended: bool,
}

impl TaskWrite {
    pub(super) fn new(cache: &Arc<TaskCache>, writes: &Arc<Writer>, id: Uuid) -> TaskWrite {
        TaskWrite { cache: cache.clone(), writes: writes.clone(), id: Some(id), ended: false }
    }

    /// The write ran to its end (committed, rolled back or failed): clear the row now.
    pub(super) fn ended(mut self) {
        self.ended = true;
    }

    /// The write ran to its end and its row is in the cache already
    /// ([`TaskCache::store_fresh`]): keep it.
    pub(super) fn settled(mut self) {
        self.id = None;
    }
}

impl Drop for TaskWrite {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        self.cache.invalidate(id);
        if self.ended {
            return;
        }
        // Abandoned mid-write. (Without a runtime the process is ending: no reader is left.)
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cache, writes) = (self.cache.clone(), self.writes.clone());
            runtime.spawn(async move {
                // A round trip behind every command queued on the connection so far.
                let _ = writes.lock().await.ping().await;
                cache.invalidate(id);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::task_cache::Lookup;
    use crate::tasks::model::Task;

    async fn writer() -> (tempfile::TempDir, Arc<Writer>) {
        let dir = tempfile::tempdir().unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("t.db")).create_if_missing(true);
        let writes = Arc::new(Writer::open(&options).await.unwrap());
        (dir, writes)
    }

    fn cached(cache: &TaskCache, task: &Task) {
        let Lookup::Miss(epoch) = cache.lookup(task.id) else { panic!("not cached yet") };
        cache.offer(task, epoch);
    }

    #[tokio::test]
    async fn an_abandoned_write_clears_the_row_again_after_the_writer_ran_it() {
        let (_dir, writes) = writer().await;
        let cache = Arc::new(TaskCache::default());
        let task = Task::sample();
        cached(&cache, &task);
        let writer = writes.lock().await; // the abandoned write's statement is still queued
        drop(TaskWrite::new(&cache, &writes, task.id));
        assert!(matches!(cache.lookup(task.id), Lookup::Miss(_)), "cleared at once");
        // A read in between puts the row back as it was before the write ...
        cached(&cache, &task);
        drop(writer);
        // ... and once the writer has run what was queued, the row is cleared again.
        for _ in 0..500 {
            if matches!(cache.lookup(task.id), Lookup::Miss(_)) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        panic!("the row read during the abandoned write was kept");
    }

    #[tokio::test]
    async fn an_ended_write_clears_the_row_and_a_settled_one_keeps_its_fresh_row() {
        let (_dir, writes) = writer().await;
        let cache = Arc::new(TaskCache::default());
        let task = Task::sample();
        cached(&cache, &task);
        TaskWrite::new(&cache, &writes, task.id).ended();
        assert!(matches!(cache.lookup(task.id), Lookup::Miss(_)));
        cache.store_fresh(task.clone());
        TaskWrite::new(&cache, &writes, task.id).settled();
        assert!(matches!(cache.lookup(task.id), Lookup::Hit(_)));
    }
}
