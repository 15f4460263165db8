"""A local stand-in for the Google Cloud REST APIs Planter calls (docs/API.md "Local stand-ins").

One server, one port, the Google paths of each API: Resource Manager v3 (`/v3/projects`,
`/v3/operations`), Cloud Billing (`/v1/projects/{id}/billingInfo`), Service Usage
(`/v1/projects/{id}/services:batchEnable`), Cloud Build (`/v1/projects/{id}/builds`) and Cloud Run
(`/v2/projects/{id}/locations/{l}/services/{s}`). Cloud Build RUNS a build: it posts the progress
callbacks its substitutions name (`_CALLBACK_URL`, `_CALLBACK_TOKEN`, `_STEP`) and then the outcome.
"""
