#!/usr/bin/env bash
# Check that every function answers on the URL the rest of the deployment was given for it.
#
# Usage: check_urls.sh FUNCTION...
# Required environment: PROJECT_ID, PROJECT_NUMBER, REGION.
#
# STEP_URL, the OIDC audience and the API Gateway backends are the functions' deterministic
# Cloud Run URLs, https://SERVICE-PROJECT_NUMBER.REGION.run.app (SERVICE = the function name
# with '-' for '_'), known before the first deploy. Cloud Run gives every service that URL
# unless its name is too long or default URLs are disabled; if that ever fails, this stops
# the build before the queue, the scheduler or the gateway are pointed at a wrong address.
set -euo pipefail

: "${PROJECT_ID:?}" "${PROJECT_NUMBER:?}" "${REGION:?}"
GCLOUD="${GCLOUD:-gcloud}"

status=0
for function in "$@"; do
  service="$(tr '[:upper:]_' '[:lower:]-' <<<"$function")"
  expected="https://${service}-${PROJECT_NUMBER}.${REGION}.run.app"
  described="$("$GCLOUD" run services describe "$service" "--region=${REGION}" "--project=${PROJECT_ID}" --format=json)"
  if EXPECTED="$expected" python3 -c '
import json, os, sys, urllib.error, urllib.request
expected = os.environ["EXPECTED"]
service = json.load(sys.stdin)
urls = {service.get("status", {}).get("url", "")}
urls.update(json.loads(service.get("metadata", {}).get("annotations", {}).get("run.googleapis.com/urls") or "[]"))
if expected in urls:
    sys.exit(0)
# Not listed: ask the URL itself. An unknown run.app host is a plain 404 page; our services
# answer with problem+json (public) or 403 from Cloud Run IAM (private).
try:
    urllib.request.urlopen(expected + "/healthz", timeout=20)
    sys.exit(0)
except urllib.error.HTTPError as error:
    ours = error.code != 404 or "problem+json" in error.headers.get("Content-Type", "")
    sys.exit(0 if ours else 1)
except OSError:
    sys.exit(1)
' <<<"$described"; then
    echo "${function}: ${expected}"
  else
    echo "ERROR: ${function} does not answer on ${expected}; see docs/DEPLOY.md (service URLs)" >&2
    status=1
  fi
done
exit "$status"
