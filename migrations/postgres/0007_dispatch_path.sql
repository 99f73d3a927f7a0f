-- The relax round being served is the highest round ever dispatched; this index makes
-- that a lookup.
CREATE INDEX tasks_served_round ON tasks (fair_round) WHERE tier = 'relax' AND account_id IS NOT NULL;

-- A task stops holding its account's slot when the upstream finishes it, not when its
-- video has been re-hosted: the next task is submitted while the download runs.
ALTER TABLE tasks ADD COLUMN upstream_done_at BIGINT;
DROP INDEX tasks_in_flight;
CREATE INDEX tasks_in_flight ON tasks (account_id)
  WHERE state IN ('pending', 'processing') AND account_id IS NOT NULL AND upstream_done_at IS NULL;
