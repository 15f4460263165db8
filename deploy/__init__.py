"""Deployment helpers run by cloudbuild.yaml (and once by hand, see docs/DEPLOY.md); never deployed."""
