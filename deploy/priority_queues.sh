#!/usr/bin/env bash
# One Cloud Tasks queue per task priority (common/config.py Settings.queue_names), each created or
# updated by queues.sh with the same retry configuration and its own share of pipeline_step.
#
# Required environment: PROJECT_ID, REGION, QUEUE (the normal queue), MAX_CONCURRENT_DISPATCHES
# (pipeline_step's capacity: max instances x concurrency). Optional: QUEUE_HIGH, QUEUE_LOW
# (default QUEUE-high and QUEUE-low, as the functions derive them from TASKS_QUEUE).
#
# The head start of high priority: the high queue may use the whole capacity, at the highest
# rate; normal at most half of it, low at most a quarter, at lower rates. A backlog of normal and
# low work therefore never holds more than three quarters of pipeline_step, and a high-priority
# step always finds a free slot (docs/DEPLOY.md, "Priorities").
set -euo pipefail

: "${PROJECT_ID:?}" "${REGION:?}" "${QUEUE:?}" "${MAX_CONCURRENT_DISPATCHES:?}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
capacity="$MAX_CONCURRENT_DISPATCHES"
half=$((capacity / 2 > 0 ? capacity / 2 : 1))
quarter=$((capacity / 4 > 0 ? capacity / 4 : 1))

QUEUE="${QUEUE_HIGH:-${QUEUE}-high}" MAX_CONCURRENT_DISPATCHES="$capacity" MAX_DISPATCHES_PER_SECOND=20 \
  bash "$here/queues.sh"
QUEUE="$QUEUE" MAX_CONCURRENT_DISPATCHES="$half" MAX_DISPATCHES_PER_SECOND=10 bash "$here/queues.sh"
QUEUE="${QUEUE_LOW:-${QUEUE}-low}" MAX_CONCURRENT_DISPATCHES="$quarter" MAX_DISPATCHES_PER_SECOND=2 \
  bash "$here/queues.sh"
