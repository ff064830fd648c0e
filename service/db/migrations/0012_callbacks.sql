-- Completion callbacks: a task may name a URL that is sent the final task, signed, each time
-- the task ends. The delivery is due from the commit of the final transition (a trigger sets it
-- in the same statement, whichever process ends the task), so it is never lost; the API
-- processes deliver due ones (SKIP LOCKED, under a lease) and retry with backoff.

ALTER TABLE tasks
    ADD COLUMN callback_url      text,
    ADD COLUMN callback_state    text,         -- pending, delivered, failed (gave up), refused
    ADD COLUMN callback_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN callback_due_at   timestamptz;  -- the next delivery attempt (NULL: none)
CREATE INDEX tasks_callback_due_idx ON tasks (callback_due_at) WHERE callback_due_at IS NOT NULL;

CREATE FUNCTION tasks_callback_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.callback_state := 'pending';
    NEW.callback_attempts := 0;
    NEW.callback_due_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER tasks_callback_due BEFORE UPDATE OF status ON tasks FOR EACH ROW
    WHEN (NEW.callback_url IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('succeeded', 'dead', 'cancelled'))
    EXECUTE FUNCTION tasks_callback_due();

-- The secret each tenant's callbacks are signed with; after a rotation the previous one signs
-- too until previous_until, so receivers can switch without losing a delivery.
CREATE TABLE callback_secrets (
    tenant          text        PRIMARY KEY,
    secret          text        NOT NULL,
    previous_secret text,
    previous_until  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
