-- A schedule's tasks may share a concurrency key, like submitted ones.

ALTER TABLE schedules ADD COLUMN concurrency_key text;
