-- The embedded store. Times are microseconds since the Unix epoch.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    tiers       TEXT NOT NULL,          -- comma-separated
    models      TEXT NOT NULL,          -- comma-separated
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    provider        TEXT NOT NULL,
    concurrency     INTEGER NOT NULL,
    tiers           TEXT NOT NULL,
    models          TEXT NOT NULL,
    weight          INTEGER NOT NULL DEFAULT 1,
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    cooldown_until  INTEGER,
    credentials     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE tasks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
    id               TEXT NOT NULL UNIQUE,
    key_id           TEXT NOT NULL,
    tier             TEXT NOT NULL,
    state            TEXT NOT NULL,
    prompt           TEXT NOT NULL,
    params           TEXT NOT NULL,                      -- JSON of tasks::model::Params
    parent_id        TEXT,
    pinned_account   TEXT,                               -- extend: the parent's account
    fair_round       INTEGER NOT NULL DEFAULT 0,         -- relax fairness: dispatch order is (fair_round, seq)
    created_at       INTEGER NOT NULL,
    account_id       TEXT,                               -- set when claimed
    attempt          TEXT,                               -- written before an upstream submission
    upstream_id      TEXT,
    lease_owner      TEXT,
    lease_until      INTEGER,
    dispatched_at    INTEGER,
    last_progress_at INTEGER,
    finished_at      INTEGER,
    progress         INTEGER NOT NULL DEFAULT 0,
    failure_reason   TEXT,
    video_key        TEXT,
    thumbnail_key    TEXT,
    width            INTEGER,
    height           INTEGER,
    duration_secs    REAL
);

CREATE INDEX tasks_by_key ON tasks (key_id, seq DESC);
CREATE INDEX tasks_queue_pro ON tasks (seq) WHERE state = 'pending' AND account_id IS NULL AND tier = 'pro';
CREATE INDEX tasks_queue_relax ON tasks (fair_round, seq) WHERE state = 'pending' AND account_id IS NULL AND tier = 'relax';
CREATE INDEX tasks_queue_relax_key ON tasks (key_id, fair_round) WHERE state = 'pending' AND account_id IS NULL AND tier = 'relax';
CREATE INDEX tasks_in_flight ON tasks (account_id) WHERE state IN ('pending', 'processing') AND account_id IS NOT NULL;
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE state = 'completed';

-- Small named counters, such as the relax queue's current fair round.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (name, value) VALUES ('relax_round', 0);
