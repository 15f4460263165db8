#!/usr/bin/env bash
# Lock the internal functions (Cloud Tasks and Cloud Scheduler targets) to one caller.
# Safe to run again: IAM bindings and the audience list are set, not appended.
#
# Usage: internal_access.sh FUNCTION...   (e.g. pipeline_step scheduler_tick)
# Required environment: PROJECT_ID, REGION, INVOKER_SA, AUDIENCE.
#
# - They were deployed with --no-allow-unauthenticated; here the invoker service account (the
#   identity in the OIDC tokens of Cloud Tasks and Cloud Scheduler) gets roles/run.invoker on
#   each, and no one else is added.
# - Both Cloud Tasks (producers enqueue with TASKS_OIDC_AUDIENCE) and Cloud Scheduler send
#   tokens for one audience, AUDIENCE (the pipeline_step service URL), and the application
#   checks that same value. Cloud Run accepts a token only for its own URL or a configured
#   custom audience, so AUDIENCE is set as a custom audience on each internal service; without
#   it the scheduler's tick would be refused by Cloud Run before reaching the function.
#   (A later `gcloud functions deploy` may reset the list, which is why every build re-runs this.)
set -euo pipefail

: "${PROJECT_ID:?}" "${REGION:?}" "${INVOKER_SA:?}" "${AUDIENCE:?}"
GCLOUD="${GCLOUD:-gcloud}"
if [[ $# -eq 0 ]]; then
  echo "usage: $0 FUNCTION..." >&2
  exit 2
fi

for function in "$@"; do
  service="$(tr '[:upper:]_' '[:lower:]-' <<<"$function")"
  echo "${function}: invoker = serviceAccount:${INVOKER_SA}; custom audience = ${AUDIENCE}"
  "$GCLOUD" functions add-invoker-policy-binding "$function" "--region=${REGION}" "--project=${PROJECT_ID}" \
    "--member=serviceAccount:${INVOKER_SA}" --quiet >/dev/null
  "$GCLOUD" run services update "$service" "--region=${REGION}" "--project=${PROJECT_ID}" \
    "--set-custom-audiences=${AUDIENCE}" --quiet
  public="$("$GCLOUD" run services get-iam-policy "$service" "--region=${REGION}" "--project=${PROJECT_ID}" \
    --flatten="bindings[].members" --filter="bindings.role:roles/run.invoker" --format="value(bindings.members)")"
  if grep -qE '^(allUsers|allAuthenticatedUsers)$' <<<"$public"; then
    echo "ERROR: ${function} is invocable by ${public//$'\n'/, }; it must be private" >&2
    exit 1
  fi
done
