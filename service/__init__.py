"""The orchestrator service: settings, storage, broker, cache, API and CLI."""
