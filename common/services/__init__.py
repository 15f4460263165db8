"""Use cases: each owns its transaction, calls queries, and enqueues only after commit."""
