"""Google Cloud REST calls for the live provider's Google steps (Resource Manager, Billing, Service Usage,
Cloud Build, Cloud Run), over plain httpx: see docs/DESIGN.md "Google Cloud steps" for why not the clients."""
