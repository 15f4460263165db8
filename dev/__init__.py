"""Local-only tooling: the dev stack, the gateway, token minting, benchmarks. Never deployed."""
