#!/usr/bin/env bash
# Put the generated API Gateway config (dev/gateway_config.py) live. Safe to run again: the
# config id is the spec's content hash, so an unchanged spec is neither re-created nor
# re-rolled out, and the API and the gateway are created only when missing.
#
# Usage: gateway.sh SPEC_FILE
# Required environment: PROJECT_ID, GATEWAY_REGION, API_ID, GATEWAY_ID, GATEWAY_SA.
# Optional: SMOKE_PATH (default /healthz), SMOKE_ATTEMPTS (default 30), SMOKE_INTERVAL (10 s),
# SMOKE_BASE_URL (default the gateway's https://HOST; tests point it elsewhere).
set -euo pipefail

: "${PROJECT_ID:?}" "${GATEWAY_REGION:?}" "${API_ID:?}" "${GATEWAY_ID:?}" "${GATEWAY_SA:?}"
GCLOUD="${GCLOUD:-gcloud}"
SPEC="${1:?usage: $0 SPEC_FILE}"
SMOKE_PATH="${SMOKE_PATH:-/healthz}"
SMOKE_ATTEMPTS="${SMOKE_ATTEMPTS:-30}"
SMOKE_INTERVAL="${SMOKE_INTERVAL:-10}"
project=("--project=${PROJECT_ID}")

digest="$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:12])' "$SPEC")"
config_id="${API_ID}-${digest}"

if ! "$GCLOUD" api-gateway apis describe "$API_ID" "${project[@]}" --format="value(name)" >/dev/null 2>&1; then
  echo "API ${API_ID}: creating"
  "$GCLOUD" api-gateway apis create "$API_ID" "${project[@]}" --quiet
fi
# API Gateway serves an API only once its managed service is enabled in the project.
managed_service="$("$GCLOUD" api-gateway apis describe "$API_ID" "${project[@]}" --format="value(managedService)")"
"$GCLOUD" services enable "$managed_service" "${project[@]}" --quiet

if "$GCLOUD" api-gateway api-configs describe "$config_id" "--api=${API_ID}" "${project[@]}" \
  --format="value(name)" >/dev/null 2>&1; then
  echo "API config ${config_id}: exists (the spec is unchanged)"
else
  echo "API config ${config_id}: creating from ${SPEC}"
  "$GCLOUD" api-gateway api-configs create "$config_id" "--api=${API_ID}" "--openapi-spec=${SPEC}" \
    "--backend-auth-service-account=${GATEWAY_SA}" "${project[@]}" --quiet
fi

gateway=("$GATEWAY_ID" "--location=${GATEWAY_REGION}" "${project[@]}")
if "$GCLOUD" api-gateway gateways describe "${gateway[@]}" --format="value(name)" >/dev/null 2>&1; then
  current="$("$GCLOUD" api-gateway gateways describe "${gateway[@]}" --format="value(apiConfig)")"
  if [[ "${current##*/}" == "$config_id" ]]; then
    echo "gateway ${GATEWAY_ID}: already serves ${config_id}"
  else
    echo "gateway ${GATEWAY_ID}: switching ${current##*/} -> ${config_id}"
    "$GCLOUD" api-gateway gateways update "${gateway[@]}" "--api=${API_ID}" "--api-config=${config_id}" --quiet
  fi
else
  echo "gateway ${GATEWAY_ID}: creating with ${config_id}"
  "$GCLOUD" api-gateway gateways create "${gateway[@]}" "--api=${API_ID}" "--api-config=${config_id}" --quiet
fi

host="$("$GCLOUD" api-gateway gateways describe "${gateway[@]}" --format="value(defaultHostname)")"
echo "gateway ${GATEWAY_ID}: https://${host}"
smoke_url="${SMOKE_BASE_URL:-https://${host}}${SMOKE_PATH}"

# Smoke test through the gateway: healthz reaches a function and the database behind it.
for attempt in $(seq 1 "$SMOKE_ATTEMPTS"); do
  code="$(python3 -c '
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=20).status)
except urllib.error.HTTPError as error:
    print(error.code)
except OSError:
    print(0)
' "$smoke_url")"
  if [[ "$code" == "200" ]]; then
    echo "smoke: GET ${smoke_url} -> 200"
    exit 0
  fi
  # A new gateway or config takes a few minutes to reach every Google front end.
  echo "smoke: GET ${smoke_url} -> ${code} (attempt ${attempt}/${SMOKE_ATTEMPTS})"
  sleep "$SMOKE_INTERVAL"
done
echo "ERROR: ${smoke_url} did not answer 200; see docs/DEPLOY.md (troubleshooting)" >&2
exit 1
