-- How many tasks wait in each tier's queue, kept by triggers in the same transaction as
-- every change of a task, so the queue limit and a task's queue position at the back of
-- a long queue are read in O(1) instead of counting the queue on every create.
CREATE TABLE queue_counts (
    tier   TEXT PRIMARY KEY,
    queued INTEGER NOT NULL
);
INSERT INTO queue_counts (tier, queued)
SELECT t.tier, (SELECT COUNT(*) FROM tasks WHERE state = 'pending' AND account_id IS NULL AND tier = t.tier)
FROM (SELECT 'relax' AS tier UNION ALL SELECT 'pro') AS t;

CREATE TRIGGER tasks_queued_on_insert AFTER INSERT ON tasks
WHEN NEW.state = 'pending' AND NEW.account_id IS NULL
BEGIN
    UPDATE queue_counts SET queued = queued + 1 WHERE tier = NEW.tier;
END;

CREATE TRIGGER tasks_queued_on_update AFTER UPDATE OF state, account_id ON tasks
WHEN (OLD.state = 'pending' AND OLD.account_id IS NULL) <> (NEW.state = 'pending' AND NEW.account_id IS NULL)
BEGIN
    UPDATE queue_counts
    SET queued = queued + CASE WHEN NEW.state = 'pending' AND NEW.account_id IS NULL THEN 1 ELSE -1 END
    WHERE tier = NEW.tier;
END;

CREATE TRIGGER tasks_queued_on_delete AFTER DELETE ON tasks
WHEN OLD.state = 'pending' AND OLD.account_id IS NULL
BEGIN
    UPDATE queue_counts SET queued = queued - 1 WHERE tier = OLD.tier;
END;
