-- Wait estimates measure how fast each tier's queue moves from recent dispatch times.
CREATE INDEX tasks_dispatched ON tasks (tier, dispatched_at) WHERE dispatched_at IS NOT NULL;
