-- Issue 6 (mirrors migrations/sqlite/0003_outbox_idempotency.sql): the Dream Machine
-- surface's tier per key, idempotent creates, webhook outbox.

-- Tier of tasks created on /dream-machine/v1; NULL means the key's best tier.
ALTER TABLE api_keys ADD COLUMN dm_tier TEXT;

-- Deleted by the owner (DELETE /dream-machine/v1/generations/{id}): hidden from the API,
-- kept so that extends of it can still be rendered.
ALTER TABLE tasks ADD COLUMN deleted_at BIGINT;

-- One row per (key, Idempotency-Key), written in the task's own insert transaction.
CREATE TABLE idempotency (
    key_id       TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,          -- SHA-256 of surface, path and body
    task_id      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX idempotency_by_task ON idempotency (task_id);

-- Webhook deliveries, one row per state change of a task with a hook URL, written in the
-- same transaction as the state change. Delivered in seq order per task.
CREATE TABLE webhook_outbox (
    seq             BIGSERIAL PRIMARY KEY,
    task_id         TEXT NOT NULL,
    state           TEXT NOT NULL,       -- the state the task entered
    url             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    abandoned_at    BIGINT,              -- retry period spent, or the task was deleted
    last_error      TEXT
);
CREATE INDEX webhook_outbox_open ON webhook_outbox (task_id, seq) WHERE delivered_at IS NULL AND abandoned_at IS NULL;
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE delivered_at IS NULL AND abandoned_at IS NULL;
