-- Recurring schedules (`orchestrator schedule`, /v1/schedules): each fires its task once per due
-- time however many API processes run. A pass locks the due schedules (SKIP LOCKED) and, in
-- the same transaction, records each due time it handles in schedule_fires (one row per
-- schedule and due time: the primary key refuses a second), creates the task and moves
-- next_due_at on.

CREATE TABLE schedules (
    id              bigserial   PRIMARY KEY,
    tenant          text        NOT NULL,
    name            text        NOT NULL,
    cron            text        NOT NULL,
    timezone        text        NOT NULL DEFAULT 'UTC',
    missed          text        NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'catch_up')),
    agent           text        NOT NULL,
    input           jsonb,
    input_checksum  text        NOT NULL,
    priority        smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    max_attempts    integer     NOT NULL,
    timeout_s       float8      NOT NULL,
    paused          boolean     NOT NULL DEFAULT false,
    next_due_at     timestamptz NOT NULL,
    last_due_at     timestamptz,
    last_fired_at   timestamptz,
    last_task_id    uuid,
    fired           bigint      NOT NULL DEFAULT 0,
    skipped         bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text,
    UNIQUE (tenant, name)
);
CREATE INDEX schedules_due_idx ON schedules (next_due_at) WHERE NOT paused;

CREATE TABLE schedule_fires (
    schedule_id bigint      NOT NULL REFERENCES schedules ON DELETE CASCADE,
    due_at      timestamptz NOT NULL,
    task_id     uuid        NOT NULL,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, due_at)
);
CREATE INDEX schedule_fires_fired_idx ON schedule_fires (fired_at);
