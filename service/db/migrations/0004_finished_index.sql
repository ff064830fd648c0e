-- Tasks by the time they finished: `orchestrator stats` counts the last 5 and 60 minutes, and
-- retention deletes finished tasks by age, without reading the whole table.

CREATE INDEX tasks_finished_idx ON tasks (finished_at) WHERE finished_at IS NOT NULL;
