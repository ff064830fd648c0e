-- The dead-letter record: every message that reached the dead-letter exchange, recorded by the
-- dead-letter consumer and acknowledged, so the queue is a transport and PostgreSQL the record.
-- A dead letter belongs to its task (the task is dead; replaying requeues it and stamps the
-- row), or is an orphan (no task could be named: its headers and body are kept to inspect).
-- Rows go with their task (retention), by `orchestrator dlq purge --older-than`, or by the
-- retention job after ORCH_RETENTION_DEAD.

CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    task_id     uuid        REFERENCES tasks (id) ON DELETE CASCADE,
    agent       text        NOT NULL,
    queue       text        NOT NULL,
    reason      text        NOT NULL,
    error       text,
    headers     jsonb       NOT NULL,
    body        bytea       NOT NULL,
    fingerprint text        NOT NULL,
    dead_at     timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    replayed_by text
);

-- One open dead letter per task: a redelivered copy of the same message is recorded once.
CREATE UNIQUE INDEX dead_letters_open_task_idx ON dead_letters (task_id)
    WHERE replayed_at IS NULL AND task_id IS NOT NULL;
-- An orphan is recorded once however often its message is redelivered.
CREATE UNIQUE INDEX dead_letters_orphan_idx ON dead_letters (fingerprint) WHERE task_id IS NULL;
-- Cascading deletes from tasks; the open record by agent (a scrape-time gauge); age.
CREATE INDEX dead_letters_task_idx ON dead_letters (task_id);
CREATE INDEX dead_letters_open_idx ON dead_letters (agent) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_dead_at_idx ON dead_letters (dead_at);

-- The attempts a task was first given: every requeue (`orchestrator retry`, `dlq replay`)
-- grants that many again, however often it is requeued. NULL until the first requeue.
ALTER TABLE tasks ADD COLUMN attempt_budget integer CHECK (attempt_budget >= 1);
