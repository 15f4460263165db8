#!/usr/bin/env bash
# Create or update the Cloud Scheduler job that ticks the stalled-step reaper. Safe to run
# again: an existing job is updated to exactly this configuration.
#
# Required environment: PROJECT_ID, REGION, JOB, TICK_URL, INVOKER_SA, AUDIENCE and
# STEP_SIGNING_SECRET (from Secret Manager through Cloud Build's secretEnv; never printed).
# Optional: SCHEDULE (cron, default every minute), TIME_ZONE.
#
# The tick is refused unless it carries X-Planter-Signature = "sha256=" + hex
# HMAC-SHA256(STEP_SIGNING_SECRET, raw body) and, in production, a Google OIDC token of the
# invoker service account for AUDIENCE. Cloud Scheduler sends a fixed body, "{}", so the
# signature is computed here once per deploy; rotating the secret means re-running this.
set -euo pipefail

: "${PROJECT_ID:?}" "${REGION:?}" "${JOB:?}" "${TICK_URL:?}" "${INVOKER_SA:?}" "${AUDIENCE:?}"
: "${STEP_SIGNING_SECRET:?STEP_SIGNING_SECRET must come from Secret Manager}"
GCLOUD="${GCLOUD:-gcloud}"
SCHEDULE="${SCHEDULE:-* * * * *}"
TIME_ZONE="${TIME_ZONE:-Etc/UTC}"
BODY='{}'

# The same computation as common.auth.sign_body (tests/unit/test_deploy.py checks they agree).
# The secret goes to python through the environment, never on a command line.
signature="$(BODY="$BODY" python3 -c '
import hashlib, hmac, os
key = os.environ["STEP_SIGNING_SECRET"].strip().encode()
print("sha256=" + hmac.new(key, os.environ["BODY"].encode(), hashlib.sha256).hexdigest())
')"

common=(
  "--location=${REGION}"
  "--project=${PROJECT_ID}"
  "--schedule=${SCHEDULE}"
  "--time-zone=${TIME_ZONE}"
  "--uri=${TICK_URL}"
  "--http-method=POST"
  "--message-body=${BODY}"
  "--oidc-service-account-email=${INVOKER_SA}"
  "--oidc-token-audience=${AUDIENCE}"
  # A missed tick is not retried: the next one comes within a minute.
  "--attempt-deadline=120s"
  "--max-retry-attempts=0"
  "--description=Planter: re-enqueue or fail stalled pipeline steps"
  "--quiet"
)
headers="Content-Type=application/json,X-Planter-Signature=${signature}"

if "$GCLOUD" scheduler jobs describe "$JOB" "--location=${REGION}" "--project=${PROJECT_ID}" \
  --format="value(name)" >/dev/null 2>&1; then
  echo "scheduler job ${JOB}: exists, updating"
  "$GCLOUD" scheduler jobs update http "$JOB" "${common[@]}" "--update-headers=${headers}" >/dev/null
else
  echo "scheduler job ${JOB}: creating"
  "$GCLOUD" scheduler jobs create http "$JOB" "${common[@]}" "--headers=${headers}" >/dev/null
fi
# (The commands' own output is discarded above: it would echo the job, signature header included.)

state="$("$GCLOUD" scheduler jobs describe "$JOB" "--location=${REGION}" "--project=${PROJECT_ID}" --format="value(state)")"
if [[ "$state" == "PAUSED" ]]; then
  echo "WARNING: job ${JOB} is PAUSED; resume it with: gcloud scheduler jobs resume ${JOB} --location=${REGION}" >&2
fi
echo "scheduler job ${JOB}: ${state:-ready}, POST ${TICK_URL} on '${SCHEDULE}' (${TIME_ZONE})"
