-- The shared store for many replicas; mirrors migrations/sqlite/0001_init.sql.
-- Times are microseconds since the Unix epoch.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    tiers       TEXT NOT NULL,          -- comma-separated
    models      TEXT NOT NULL,          -- comma-separated
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    provider        TEXT NOT NULL,
    concurrency     BIGINT NOT NULL,
    tiers           TEXT NOT NULL,
    models          TEXT NOT NULL,
    weight          BIGINT NOT NULL DEFAULT 1,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    cooldown_until  BIGINT,
    credentials     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE tasks (
    seq              BIGSERIAL PRIMARY KEY,              -- arrival order
    id               TEXT NOT NULL UNIQUE,
    key_id           TEXT NOT NULL,
    tier             TEXT NOT NULL,
    state            TEXT NOT NULL,
    prompt           TEXT NOT NULL,
    params           TEXT NOT NULL,                      -- JSON of tasks::model::Params
    parent_id        TEXT,
    pinned_account   TEXT,                               -- extend: the parent's account
    fair_round       BIGINT NOT NULL DEFAULT 0,          -- relax fairness: dispatch order is (fair_round, seq)
    created_at       BIGINT NOT NULL,
    account_id       TEXT,                               -- set when claimed
    attempt          TEXT,                               -- written before an upstream submission
    upstream_id      TEXT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    dispatched_at    BIGINT,
    last_progress_at BIGINT,
    finished_at      BIGINT,
    progress         BIGINT NOT NULL DEFAULT 0,
    failure_reason   TEXT,
    video_key        TEXT,
    thumbnail_key    TEXT,
    width            BIGINT,
    height           BIGINT,
    duration_secs    DOUBLE PRECISION
);

CREATE INDEX tasks_by_key ON tasks (key_id, seq DESC);
CREATE INDEX tasks_queue_pro ON tasks (seq) WHERE state = 'pending' AND account_id IS NULL AND tier = 'pro';
CREATE INDEX tasks_queue_relax ON tasks (fair_round, seq) WHERE state = 'pending' AND account_id IS NULL AND tier = 'relax';
CREATE INDEX tasks_queue_relax_key ON tasks (key_id, fair_round) WHERE state = 'pending' AND account_id IS NULL AND tier = 'relax';
CREATE INDEX tasks_in_flight ON tasks (account_id) WHERE state IN ('pending', 'processing') AND account_id IS NOT NULL;
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE state = 'completed';

-- Small named counters, such as the relax queue's current fair round. Its row is also
-- the lock that serialises relax admissions and pool-wide capacity checks.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (name, value) VALUES ('relax_round', 0);
