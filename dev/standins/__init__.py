"""Local servers that speak the outside APIs Planter uses, for `make dev` and the tests."""
