"""Planter's GitHub side: a small REST client (httpx), App authentication, and the step work."""
