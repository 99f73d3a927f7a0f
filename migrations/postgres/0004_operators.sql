-- Operators (issue 9): the admin API lists recent failures newest first.
CREATE INDEX tasks_failed ON tasks (finished_at) WHERE state = 'failed';
