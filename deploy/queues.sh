#!/usr/bin/env bash
# Create or update the Cloud Tasks queue that chains the pipeline steps. Safe to run again:
# an existing queue is updated to exactly this configuration.
#
# Required environment: PROJECT_ID, REGION, QUEUE, MAX_CONCURRENT_DISPATCHES.
#
# Retries: a step that answers non-2xx is delivered again after 10 s, 20 s, 40 s ... up to
# 10 min between attempts (5 doublings), 10 deliveries in all (~40 min). The pipeline counts
# its own attempts per step (common/pipeline.py, 3-5) and fails the task when they are spent;
# the extra deliveries cover "still running elsewhere" and "backing off" answers. A task the
# queue gives up on is not lost: the scheduler tick re-enqueues stalled steps.
# Rate: MAX_CONCURRENT_DISPATCHES is pipeline_step's max instances x concurrency
# (cloudbuild.yaml), so the queue never pushes more steps than the functions can hold and the
# Cloud SQL connection budget of docs/DEPLOY.md holds.
set -euo pipefail

: "${PROJECT_ID:?}" "${REGION:?}" "${QUEUE:?}" "${MAX_CONCURRENT_DISPATCHES:?}"
GCLOUD="${GCLOUD:-gcloud}"

MAX_ATTEMPTS="${MAX_ATTEMPTS:-10}"
MIN_BACKOFF="${MIN_BACKOFF:-10s}"
MAX_BACKOFF="${MAX_BACKOFF:-600s}"
MAX_DOUBLINGS="${MAX_DOUBLINGS:-5}"
MAX_DISPATCHES_PER_SECOND="${MAX_DISPATCHES_PER_SECOND:-20}"

settings=(
  "--location=${REGION}"
  "--project=${PROJECT_ID}"
  "--max-attempts=${MAX_ATTEMPTS}"
  # 0 = no age limit: the attempt count alone decides when the queue stops.
  "--max-retry-duration=0s"
  "--min-backoff=${MIN_BACKOFF}"
  "--max-backoff=${MAX_BACKOFF}"
  "--max-doublings=${MAX_DOUBLINGS}"
  "--max-dispatches-per-second=${MAX_DISPATCHES_PER_SECOND}"
  "--max-concurrent-dispatches=${MAX_CONCURRENT_DISPATCHES}"
)

if "$GCLOUD" tasks queues describe "$QUEUE" "--location=${REGION}" "--project=${PROJECT_ID}" \
  --format="value(name)" >/dev/null 2>&1; then
  echo "queue ${QUEUE}: exists, updating its retry and rate configuration"
  "$GCLOUD" tasks queues update "$QUEUE" "${settings[@]}" --quiet
else
  echo "queue ${QUEUE}: creating"
  "$GCLOUD" tasks queues create "$QUEUE" "${settings[@]}" --quiet
fi

state="$("$GCLOUD" tasks queues describe "$QUEUE" "--location=${REGION}" "--project=${PROJECT_ID}" --format="value(state)")"
if [[ "$state" == "PAUSED" ]]; then
  # Paused by hand (docs/DEPLOY.md, emergency stop): a deploy does not silently restart it.
  echo "WARNING: queue ${QUEUE} is PAUSED; resume it with: gcloud tasks queues resume ${QUEUE} --location=${REGION}" >&2
fi
echo "queue ${QUEUE}: ${state:-ready}"
