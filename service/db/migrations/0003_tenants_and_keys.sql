-- Tenants: every API key belongs to one (a key created without one is its own), every task
-- to its submitter's; idempotency keys are unique per tenant. Key life cycle: names are
-- unique among live keys, keys may expire, and their last use is recorded. Per-key limits
-- (empty: the settings' defaults).

ALTER TABLE api_keys
    ADD COLUMN tenant           text,
    ADD COLUMN expires_at       timestamptz,
    ADD COLUMN last_used_at     timestamptz,
    ADD COLUMN rate_limit       text,
    ADD COLUMN max_active_tasks integer;
UPDATE api_keys SET tenant = name;
ALTER TABLE api_keys ALTER COLUMN tenant SET NOT NULL;
-- Older live keys sharing a name keep working under a name of their own.
UPDATE api_keys k SET name = k.name || '-' || k.id
  WHERE revoked_at IS NULL AND EXISTS (
    SELECT 1 FROM api_keys newer
     WHERE newer.name = k.name AND newer.revoked_at IS NULL AND newer.id > k.id);
CREATE UNIQUE INDEX api_keys_live_name_idx ON api_keys (name) WHERE revoked_at IS NULL;

-- Tasks stored before tenants belong to no tenant: only admin keys see them.
ALTER TABLE tasks ADD COLUMN tenant text NOT NULL DEFAULT '';
ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency_key_key;
CREATE UNIQUE INDEX tasks_tenant_idempotency_idx ON tasks (tenant, idempotency_key);
CREATE INDEX tasks_tenant_created_idx ON tasks (tenant, created_at DESC, id DESC);
