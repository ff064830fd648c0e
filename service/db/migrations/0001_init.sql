-- Tasks, their state-transition timeline, API keys and the worker registry.

CREATE TABLE tasks (
    id               uuid PRIMARY KEY,
    agent            text        NOT NULL,
    input            jsonb       NOT NULL,
    status           text        NOT NULL CHECK (status IN
                       ('queued', 'running', 'retrying', 'succeeded', 'dead', 'cancelled')),
    priority         smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    timeout_s        double precision NOT NULL CHECK (timeout_s > 0),
    idempotency_key  text UNIQUE,
    result           jsonb,
    error            text,
    trace_id         text,
    traceparent      text,
    input_checksum   text        NOT NULL,
    cancel_requested boolean     NOT NULL DEFAULT false,
    run_id           uuid,
    worker_id        text,
    version          integer     NOT NULL DEFAULT 1,
    available_at     timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz
);

-- Keyset pagination (newest first) with optional filters.
CREATE INDEX tasks_created_idx ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at DESC, id DESC);
CREATE INDEX tasks_agent_created_idx ON tasks (agent, created_at DESC, id DESC);
-- The outbox: rows whose message is committed but not yet confirmed by the broker.
CREATE INDEX tasks_outbox_idx ON tasks (created_at) WHERE published_at IS NULL;

CREATE TABLE task_events (
    id         bigserial   PRIMARY KEY,
    task_id    uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind       text        NOT NULL,
    status     text        NOT NULL,
    attempt    integer     NOT NULL,
    worker_id  text,
    detail     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX task_events_task_idx ON task_events (task_id, id);

CREATE TABLE api_keys (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    key_hash    text        NOT NULL UNIQUE,
    scopes      text[]      NOT NULL DEFAULT ARRAY['tasks:write', 'tasks:read'],
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE workers (
    worker_id   text        PRIMARY KEY,
    agents      text[]      NOT NULL,
    hostname    text        NOT NULL,
    pid         integer     NOT NULL,
    concurrency integer     NOT NULL,
    in_flight   integer     NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);
