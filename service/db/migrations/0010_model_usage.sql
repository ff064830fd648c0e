-- What a task's model calls used, over all its attempts: tokens in and out, and their cost at
-- the price table of the worker that ran them (ORCH_LLM_PRICES).

ALTER TABLE tasks ADD COLUMN tokens_in bigint NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN tokens_out bigint NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN cost_usd float8 NOT NULL DEFAULT 0;
