"""The ``planter`` command: Planter's HTTP API from a terminal (PLANTER_URL, PLANTER_TOKEN)."""
