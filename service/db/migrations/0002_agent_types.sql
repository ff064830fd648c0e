-- Agent types that have had a worker: they must keep one (AgentsMissing pages when none is
-- live), until retired with `orchestrator agents retire NAME`.

CREATE TABLE agent_types (
    agent      text        PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT now()
);
INSERT INTO agent_types (agent) SELECT DISTINCT unnest(agents) FROM workers ON CONFLICT DO NOTHING;
