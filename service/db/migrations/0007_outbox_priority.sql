-- The outbox publishes higher priorities first, oldest first within one: its claim reads this
-- index in order (the backlog's count and oldest age read it too).

CREATE INDEX tasks_outbox_priority_idx ON tasks (priority DESC, created_at)
    WHERE published_at IS NULL;
DROP INDEX tasks_outbox_idx;
