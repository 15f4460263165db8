"""Shared code of every Planter function: configuration, database, auth, services."""
