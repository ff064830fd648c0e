-- Task counts kept with the transitions instead of counted: the scrape-time gauges, the doctor
-- and the tenant caps read a few rows whatever the size of tasks.
--
-- Every statement that inserts, updates or deletes tasks appends its net change per
-- (tenant, agent, status) to task_count_deltas (a statement-level trigger over the transition
-- tables: one insert per statement, only groups whose count changed, no row that two
-- transactions update, so no lock waits and no deadlocks). The API processes fold the deltas into
-- task_counts every few seconds; a count is task_counts plus the deltas not folded yet.

CREATE TABLE task_counts (
    tenant text   NOT NULL,
    agent  text   NOT NULL,
    status text   NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (tenant, agent, status)
);

CREATE TABLE task_count_deltas (  -- append only between folds; no index: inserts stay cheap
    tenant text    NOT NULL,
    agent  text    NOT NULL,
    status text    NOT NULL,
    n      integer NOT NULL
);

CREATE FUNCTION task_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN  -- each branch reads only the transition tables its trigger has
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_count_deltas (tenant, agent, status, n)
        SELECT tenant, agent, status, count(*) FROM new_rows GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO task_count_deltas (tenant, agent, status, n)
        SELECT tenant, agent, status, -count(*) FROM old_rows GROUP BY 1, 2, 3;
    ELSE
        INSERT INTO task_count_deltas (tenant, agent, status, n)
        SELECT tenant, agent, status, sum(n) FROM (
            SELECT tenant, agent, status, 1 AS n FROM new_rows
            UNION ALL SELECT tenant, agent, status, -1 FROM old_rows) AS changed
        GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION task_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_count_deltas;
    DELETE FROM task_counts;
    RETURN NULL;
END
$$;

-- Taken before the triggers exist and held to commit: no task changes between the seed count
-- and the first delta.
LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER task_counts_inserted AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_changed();
CREATE TRIGGER task_counts_updated AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_changed();
CREATE TRIGGER task_counts_deleted AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_changed();
CREATE TRIGGER task_counts_truncated AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_truncated();

INSERT INTO task_counts (tenant, agent, status, n)
SELECT tenant, agent, status, count(*) FROM tasks GROUP BY 1, 2, 3;

-- The live tasks (waiting or running) are few whatever the size of the table: the oldest-due,
-- past-timeout and reconciler queries read them from this index alone.
CREATE INDEX tasks_live_idx ON tasks (agent, available_at)
    WHERE status IN ('queued', 'retrying', 'running');
