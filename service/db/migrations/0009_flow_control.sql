-- Flow control: a task may name a concurrency key (one customer, one conversation) whose
-- running tasks its agent type bounds; `waits` counts the times it waited for a limit (or was
-- told by a provider to come back later), which spaces its next wait out.

ALTER TABLE tasks ADD COLUMN concurrency_key text;
ALTER TABLE tasks ADD COLUMN waits integer NOT NULL DEFAULT 0;
