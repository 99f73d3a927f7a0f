-- Webhook deliveries are queued by a trigger in the statement that changes a task's state,
-- instead of by a second statement in an explicit transaction: the change and its delivery
-- still commit together, and the state changes on the dispatch path (processing, completed,
-- failed) hold the one writer connection for one statement instead of four round trips.
-- A deleted task's change queues nothing (deletion sets deleted_at before it fails the task).
CREATE TRIGGER tasks_webhook_on_state AFTER UPDATE OF state ON tasks
WHEN NEW.state <> OLD.state
 AND NEW.state IN ('processing', 'completed', 'failed')
 AND NEW.deleted_at IS NULL
 AND json_extract(NEW.params, '$.notify_hook') IS NOT NULL
BEGIN
    INSERT INTO webhook_outbox (task_id, state, url, created_at, next_attempt_at)
    VALUES (NEW.id, NEW.state, json_extract(NEW.params, '$.notify_hook'),
            CASE NEW.state WHEN 'processing' THEN NEW.last_progress_at ELSE NEW.finished_at END,
            CASE NEW.state WHEN 'processing' THEN NEW.last_progress_at ELSE NEW.finished_at END);
END;
