-- The backups `orchestrator backup create` wrote and when `orchestrator backup verify` last
-- proved each one restorable and consistent: the newest verification is a scrape-time metric
-- and the BackupNotVerified alert. Dumps leave this table's rows out, and a restore keeps the
-- live ones, so restoring an old backup does not forget the newer ones.

CREATE TABLE backups (
    id          bigserial   PRIMARY KEY,
    file_name   text        NOT NULL,
    database    text        NOT NULL,
    sha256      text        NOT NULL UNIQUE,
    size_bytes  bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    verified_at timestamptz,
    row_counts  jsonb       NOT NULL
);
