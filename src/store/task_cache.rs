//! Tasks as last read, kept in memory so that polling a task that has not changed does
//! not read the database.
//!
//! Only a store whose every task write goes through this process may use it (the
//! embedded store: `serve` holds the data folder's lock). The store calls
//! [`TaskCache::invalidate`] after each committed change of a task, so a read that starts
//! after a change returns sees the change. A read that raced a change must not put the
//! older row back: every change bumps its shard's epoch, and [`TaskCache::offer`] keeps
//! a row only if the epoch is what it was when the read began.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::tasks::model::Task;

const SHARDS: usize = 64;
/// Most tasks held per shard; a full shard drops an arbitrary entry for the new one.
const PER_SHARD: usize = 256;

#[derive(Default)]
struct Shard {
    epoch: u64,
    tasks: HashMap<Uuid, Arc<Task>>,
}

pub struct TaskCache {
    shards: Vec<Mutex<Shard>>,
}

/// What a lookup found: the task, or the epoch to hand to [`TaskCache::offer`] with the row read instead.
/// A task that has not changed is the same `Arc`, so readers may memoise work on it.
pub enum Lookup {
    Hit(Arc<Task>),
    Miss(u64),
}

impl Default for TaskCache {
    fn default() -> Self {
        TaskCache { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl TaskCache {
    fn shard(&self, id: Uuid) -> std::sync::MutexGuard<'_, Shard> {
        // UUIDv4 bits are random: the low byte spreads evenly.
        self.shards[id.as_bytes()[15] as usize % SHARDS].lock().expect("task cache shard")
    }

    pub fn lookup(&self, id: Uuid) -> Lookup {
        let shard = self.shard(id);
        match shard.tasks.get(&id) {
            Some(task) => Lookup::Hit(Arc::clone(task)),
            None => Lookup::Miss(shard.epoch),
        }
    }

    /// Keeps a task read from the database, unless it changed since the read began.
    pub fn offer(&self, task: &Task, epoch: u64) {
        let mut shard = self.shard(task.id);
        if shard.epoch != epoch {
            return;
        }
        if shard.tasks.len() >= PER_SHARD {
            if let Some(victim) = shard.tasks.keys().next().copied() {
                shard.tasks.remove(&victim);
            }
        }
        shard.tasks.insert(task.id, Arc::new(task.clone()));
    }

    /// A task changed (call after the change committed).
    pub fn invalidate(&self, id: Uuid) {
        let mut shard = self.shard(id);
        shard.epoch += 1;
        shard.tasks.remove(&id);
    }

    /// A task changed, and this is its row as the change left it (call right after
    /// the change committed, from the connection that made it).
    pub fn store_fresh(&self, task: Task) {
        let mut shard = self.shard(task.id);
        shard.epoch += 1;
        if shard.tasks.len() >= PER_SHARD && !shard.tasks.contains_key(&task.id) {
            if let Some(victim) = shard.tasks.keys().next().copied() {
                shard.tasks.remove(&victim);
            }
        }
        shard.tasks.insert(task.id, Arc::new(task));
    }

    /// Many tasks changed.
    pub fn invalidate_all(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().expect("task cache shard");
            shard.epoch += 1;
            shard.tasks.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::model::*;

    fn sample_task() -> Task {
        Task::sample()
    }

    #[test]
    fn an_offered_task_is_served_until_it_changes() {
        let cache = TaskCache::default();
        let task = sample_task();
        let Lookup::Miss(epoch) = cache.lookup(task.id) else { panic!("an empty cache has nothing") };
        cache.offer(&task, epoch);
        assert!(matches!(cache.lookup(task.id), Lookup::Hit(t) if *t == task));
        let (Lookup::Hit(a), Lookup::Hit(b)) = (cache.lookup(task.id), cache.lookup(task.id)) else { panic!() };
        assert!(Arc::ptr_eq(&a, &b), "an unchanged task is the same Arc");
        cache.invalidate(task.id);
        assert!(matches!(cache.lookup(task.id), Lookup::Miss(_)));
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = TaskCache::default();
        let task = sample_task();
        let Lookup::Miss(epoch) = cache.lookup(task.id) else { panic!() };
        // The row was read, then the task changed before the reader offered it.
        cache.invalidate(task.id);
        cache.offer(&task, epoch);
        assert!(matches!(cache.lookup(task.id), Lookup::Miss(_)), "the older row must not come back");
        cache.invalidate_all();
        let Lookup::Miss(epoch) = cache.lookup(task.id) else { panic!() };
        cache.offer(&task, epoch);
        assert!(matches!(cache.lookup(task.id), Lookup::Hit(_)));
    }

    #[test]
    fn a_fresh_row_replaces_the_old_one_and_outdates_reads_in_flight() {
        let cache = TaskCache::default();
        let mut task = sample_task();
        let Lookup::Miss(before) = cache.lookup(task.id) else { panic!() };
        task.progress = 40;
        cache.store_fresh(task.clone());
        assert!(matches!(cache.lookup(task.id), Lookup::Hit(t) if t.progress == 40));
        let mut older = task.clone();
        older.progress = 0;
        cache.offer(&older, before);
        assert!(matches!(cache.lookup(task.id), Lookup::Hit(t) if t.progress == 40), "a read from before the change must not win");
    }

    #[test]
    fn a_shard_stays_bounded() {
        let cache = TaskCache::default();
        for _ in 0..PER_SHARD * SHARDS * 2 {
            let mut task = sample_task();
            task.id = Uuid::new_v4();
            let Lookup::Miss(epoch) = cache.lookup(task.id) else { panic!() };
            cache.offer(&task, epoch);
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().tasks.len()).sum();
        assert!(held <= PER_SHARD * SHARDS);
    }
}
