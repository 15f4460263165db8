"""step transitions as server-side functions: one call per claim, record, reaper tick, heartbeat, callback

Revision ID: 0004_i13
Revises: 0003_i17
Create Date: 2026-12-01 10:30:00.000000

Each function holds the statements the engine used to send one by one, in the same order, so a
transition costs one round trip's worth of work and PostgreSQL plans its statements once per
session (PL/pgSQL caches them) instead of on every call. The functions are VOLATILE: under READ
COMMITTED each statement inside takes a fresh snapshot, so "lock the task, then read the step in
the next statement" keeps its meaning (docs/DESIGN.md). What depends on Python's pipeline
definitions (phase order, messages, backoffs, the next step) is passed in by the caller, so the
functions never need to change when a task type is added.
"""

from __future__ import annotations

from alembic import op

revision = "0004_i13"
down_revision = "0003_i17"
branch_labels = None
depends_on = None

_TERMINAL = "('completed', 'failed', 'cancelled')"

# The locked task and step as the engine decides on them (queries.steps' read of a step).
_STEP_TYPE = """
CREATE TYPE planter_step AS (
    verdict text, attempt integer,
    task_status text, user_id uuid, payload jsonb, project_name text, project_description text, mode text,
    task_type text, priority text, progress_percent smallint, org_url text, repo_url text, deployment_url text,
    gcp_project_id text, project_id text,
    status text, attempts integer, max_attempts integer, generation integer, "position" smallint, claim_id uuid,
    handoff jsonb, due_at timestamptz, backing_off boolean, leased boolean, lease_left double precision,
    earlier_unfinished boolean
)
"""

# Two statements on purpose (queries.steps, docs/DESIGN.md): the step is read by a statement that
# starts after the task lock is granted, so it sees what the previous holder committed.
_LOCK_STEP = """
CREATE FUNCTION planter_lock_step(p_task uuid, p_step text, p_early double precision)
RETURNS SETOF planter_step LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM tasks WHERE id = p_task FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT NULL::text, NULL::integer,
           t.status, t.user_id, t.payload, t.project_name, t.project_description, t.mode, t.type, t.priority,
           t.progress_percent, t.org_url, t.repo_url, t.deployment_url, t.gcp_project_id, t.project_id,
           s.status, s.attempts, s.max_attempts, s.generation, s.position, s.claim_id, s.handoff, s.due_at,
           s.due_at > now() + make_interval(secs => p_early),
           s.lease_expires_at > now(), extract(epoch FROM s.lease_expires_at - now())::double precision,
           EXISTS (SELECT 1 FROM task_steps p WHERE p.task_id = s.task_id AND p.position < s.position
                   AND p.status NOT IN ('succeeded', 'skipped'))
    FROM tasks t JOIN task_steps s ON s.task_id = t.id
    WHERE t.id = p_task AND s.name = p_step;
END $$
"""

_ADD_USAGE = """
CREATE FUNCTION planter_add_usage(p_user uuid, p_period date, p_usage integer[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_usage[1], 0) + coalesce(p_usage[2], 0) + coalesce(p_usage[3], 0) + coalesce(p_usage[4], 0) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO usage (user_id, period_start, ai_operations_count, projects_created, issues_generated, prs_created)
    VALUES (p_user, p_period, p_usage[1], p_usage[2], p_usage[3], p_usage[4])
    ON CONFLICT (user_id, period_start) DO UPDATE SET
        ai_operations_count = usage.ai_operations_count + excluded.ai_operations_count,
        projects_created = usage.projects_created + excluded.projects_created,
        issues_generated = usage.issues_generated + excluded.issues_generated,
        prs_created = usage.prs_created + excluded.prs_created,
        updated_at = now();
END $$
"""

# Fail the step and the task, skip the steps after it, note it in the history.
_FAIL_TASK = """
CREATE FUNCTION planter_fail_task(p_task uuid, p_step text, p_error text, p_message text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_percent smallint;
BEGIN
    UPDATE task_steps SET status = 'failed', finished_at = now(), claim_id = NULL, lease_expires_at = NULL,
           error = p_error, due_at = NULL
    WHERE task_id = p_task AND name = p_step;
    UPDATE task_steps SET status = 'skipped', due_at = NULL WHERE task_id = p_task AND status = 'pending';
    UPDATE tasks SET status = 'failed', failed_at = now(), error_message = p_step || ': ' || p_error,
           message = p_message, updated_at = now(), version = version + 1
    WHERE id = p_task
    RETURNING progress_percent INTO STRICT v_percent;
    INSERT INTO task_progress (task_id, update_id, status, message, progress_percent)
    VALUES (p_task, 'failed', 'failed', p_message, v_percent)
    ON CONFLICT (task_id, update_id) DO NOTHING;
END $$
"""

# A waiting or running step of a task that ended: skipped, its work no longer wanted.
_STOP_STEP = """
CREATE FUNCTION planter_stop_step(p_task uuid, p_step text, p_error text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_steps SET status = 'skipped', finished_at = now(), claim_id = NULL, lease_expires_at = NULL,
           due_at = NULL, error = p_error
    WHERE task_id = p_task AND name = p_step AND status IN ('waiting', 'running');
END $$
"""

# A delivery's claim: the decisions of services.steps._claim, named by `verdict`. The phase never
# moves back: a worker's callback may already have shown a later one.
_CLAIM_STEP = f"""
CREATE FUNCTION planter_claim_step(
    p_task uuid, p_step text, p_claim uuid, p_timeout double precision, p_message text, p_percent integer,
    p_phases text[], p_early double precision, p_hold double precision, p_fail_error text, p_fail_message text
) RETURNS SETOF planter_step LANGUAGE plpgsql AS $$
DECLARE
    r planter_step;
BEGIN
    SELECT * INTO r FROM planter_lock_step(p_task, p_step, p_early);
    IF NOT FOUND THEN
        r.verdict := 'no_task';
    ELSIF r.task_status IN {_TERMINAL} THEN
        r.verdict := 'terminal';
        IF r.status = 'waiting' THEN
            PERFORM planter_stop_step(p_task, p_step, 'the task was ' || r.task_status || ' while the step waited');
            r.verdict := 'stopped';
        END IF;
    ELSIF r.status IN ('succeeded', 'failed', 'skipped') THEN
        r.verdict := 'finished';
    ELSIF r.earlier_unfinished THEN
        r.verdict := 'earlier_unfinished';
    ELSIF r.status = 'running' AND r.leased THEN
        r.verdict := 'running';
    ELSIF r.status = 'pending' AND r.backing_off THEN
        r.verdict := 'backing_off';
    ELSIF r.status = 'waiting' AND r.leased AND r.backing_off THEN
        r.verdict := 'check_not_due';
    ELSIF r.status = 'waiting' AND r.leased THEN
        -- A check in flight holds the step for p_hold seconds: copies arriving meanwhile see the
        -- next check not yet due; if the check's delivery dies, the reaper sends another.
        UPDATE task_steps SET claim_id = p_claim, heartbeat_at = now(), due_at = now() + make_interval(secs => p_hold)
        WHERE task_id = p_task AND name = p_step AND status = 'waiting';
        r.verdict := 'check';
        r.attempt := r.attempts;
    ELSIF r.attempts >= r.max_attempts THEN
        -- The last attempt's run died without recording anything: the attempts are spent.
        PERFORM planter_fail_task(p_task, p_step, p_fail_error, p_fail_message);
        r.verdict := 'exhausted';
    ELSE
        WITH step AS (
            UPDATE task_steps SET status = 'running', attempts = attempts + 1, claim_id = p_claim,
                   started_at = coalesce(started_at, now()), heartbeat_at = now(),
                   lease_expires_at = now() + make_interval(secs => p_timeout), due_at = NULL
            WHERE task_id = p_task AND name = p_step
            RETURNING attempts
        ), task AS (
            UPDATE tasks SET current_step = p_step, message = p_message,
                   status = CASE WHEN array_position(p_phases, status) > array_position(p_phases, p_step)
                                 THEN status ELSE p_step END,
                   progress_percent = greatest(progress_percent, p_percent), updated_at = now(),
                   version = version + 1
            WHERE id = p_task
            RETURNING progress_percent, status
        ), progress AS (
            INSERT INTO task_progress (task_id, update_id, status, message, progress_percent)
            SELECT p_task, 'step:' || p_step, task.status, p_message, task.progress_percent FROM task
            ON CONFLICT (task_id, update_id) DO NOTHING
        )
        SELECT step.attempts INTO STRICT r.attempt FROM step;
        r.verdict := 'claimed';
    END IF;
    RETURN NEXT r;
END $$
"""

# What every recording function answers.
_RECORDED = """
CREATE TYPE planter_recorded AS (
    verdict text, task_status text, priority text, generation integer, due_at timestamptz,
    task_type text, started_facts jsonb, step_results json
)
"""

# The start shared by the recording functions: lock and read; the claim must still hold (a worker's
# outcome callback passes no claim: it decided under the same lock that the step waits).
_LOCKED_CLAIM = """
    SELECT * INTO r FROM planter_lock_step(p_task, p_step, p_early);
    IF NOT FOUND OR r.status <> p_wanted OR (p_claim IS NOT NULL AND r.claim_id IS DISTINCT FROM p_claim) THEN
        v_out.verdict := 'lost';
        RETURN v_out;
    END IF;
    v_out.task_status := r.task_status;
    v_out.priority := r.priority;
    IF p_note IS NOT NULL THEN
        -- Remembered after the step leaves 'waiting', so that a repeated outcome is told from a late one.
        UPDATE task_steps SET handoff = coalesce(handoff, '{}'::jsonb) || jsonb_build_object('outcome', p_note)
        WHERE task_id = p_task AND name = p_step;
    END IF;
"""

_FACTS_OF_ROW = """jsonb_strip_nulls(jsonb_build_object(
            'org_url', nullif(r.org_url, ''), 'repo_url', nullif(r.repo_url, ''),
            'deployment_url', nullif(r.deployment_url, ''), 'gcp_project_id', nullif(r.gcp_project_id, ''),
            'project_id', nullif(r.project_id, '')))"""

# Success: the step's result, usage, then the next step made due; for the last step the caller
# builds the task's result from `step_results` and completes it (planter_complete_task) in the
# same transaction.
_RECORD_SUCCESS = f"""
CREATE FUNCTION planter_record_success(
    p_task uuid, p_step text, p_claim uuid, p_wanted text, p_note text, p_early double precision,
    p_status text, p_result jsonb, p_period date, p_usage integer[], p_next text, p_facts jsonb, p_message text
) RETURNS planter_recorded LANGUAGE plpgsql AS $$
DECLARE
    r planter_step;
    v_out planter_recorded;
BEGIN
{_LOCKED_CLAIM}
    UPDATE task_steps SET status = p_status, finished_at = now(), claim_id = NULL, lease_expires_at = NULL,
           error = NULL, result = p_result, due_at = NULL
    WHERE task_id = p_task AND name = p_step;
    PERFORM planter_add_usage(r.user_id, p_period, p_usage);
    IF r.task_status IN {_TERMINAL} THEN
        v_out.verdict := 'terminal';  -- a terminal task never changes again
    ELSIF p_next IS NOT NULL THEN
        UPDATE tasks SET current_step = p_next, updated_at = now(), version = version + 1,
               org_url = coalesce(p_facts->>'org_url', org_url), repo_url = coalesce(p_facts->>'repo_url', repo_url),
               deployment_url = coalesce(p_facts->>'deployment_url', deployment_url),
               gcp_project_id = coalesce(p_facts->>'gcp_project_id', gcp_project_id),
               project_id = coalesce(p_facts->>'project_id', project_id), message = coalesce(p_message, message)
        WHERE id = p_task;
        UPDATE task_steps SET due_at = now() WHERE task_id = p_task AND name = p_next AND status = 'pending'
        RETURNING generation INTO STRICT v_out.generation;
        v_out.verdict := 'advanced';
    ELSE
        v_out.verdict := 'last';
        v_out.task_type := r.task_type;
        v_out.started_facts := {_FACTS_OF_ROW};
        v_out.step_results := (SELECT json_object_agg(s.name, s.result ORDER BY s.position)
                             FROM task_steps s WHERE s.task_id = p_task);
    END IF;
    RETURN v_out;
END $$
"""

_COMPLETE_TASK = """
CREATE FUNCTION planter_complete_task(p_task uuid, p_facts jsonb, p_message text, p_result jsonb, p_percent integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    done record;
BEGIN
    UPDATE tasks SET current_step = NULL, updated_at = now(), version = version + 1,
           org_url = coalesce(p_facts->>'org_url', org_url), repo_url = coalesce(p_facts->>'repo_url', repo_url),
           deployment_url = coalesce(p_facts->>'deployment_url', deployment_url),
           gcp_project_id = coalesce(p_facts->>'gcp_project_id', gcp_project_id),
           project_id = coalesce(p_facts->>'project_id', project_id)
    WHERE id = p_task;
    UPDATE tasks SET status = 'completed', completed_at = now(), progress_percent = p_percent, current_step = NULL,
           message = p_message, updated_at = now(), version = version + 1, result = p_result
    WHERE id = p_task
    RETURNING org_url, repo_url, deployment_url, gcp_project_id INTO STRICT done;
    INSERT INTO task_progress (task_id, update_id, status, message, progress_percent,
                               org_url, repo_url, deployment_url, gcp_project_id)
    VALUES (p_task, 'completed', 'completed', p_message, p_percent,
            done.org_url, done.repo_url, done.deployment_url, done.gcp_project_id)
    ON CONFLICT (task_id, update_id) DO NOTHING;
END $$
"""

# Failure: metered usage first, then stop (task ended), fail (refused or last attempt), or retry
# after a delay (a rate limit gives the attempt back).
_RECORD_FAILURE = f"""
CREATE FUNCTION planter_record_failure(
    p_task uuid, p_step text, p_claim uuid, p_wanted text, p_note text, p_early double precision,
    p_attempt integer, p_error text, p_period date, p_usage integer[], p_refused boolean,
    p_limited_after double precision, p_backoff double precision, p_fail_message text
) RETURNS planter_recorded LANGUAGE plpgsql AS $$
DECLARE
    r planter_step;
    v_out planter_recorded;
BEGIN
{_LOCKED_CLAIM}
    PERFORM planter_add_usage(r.user_id, p_period, p_usage);
    IF r.task_status IN {_TERMINAL} THEN
        PERFORM planter_stop_step(p_task, p_step, p_error);
        v_out.verdict := 'stopped';
    ELSIF p_refused OR p_attempt >= r.max_attempts THEN
        PERFORM planter_fail_task(p_task, p_step, p_error, p_fail_message);
        v_out.verdict := 'failed';
    ELSE
        UPDATE task_steps SET status = 'pending', claim_id = NULL, lease_expires_at = NULL,
               error = coalesce(p_error, error),
               due_at = now() + make_interval(secs => coalesce(p_limited_after, p_backoff)),
               attempts = attempts - CASE WHEN p_limited_after IS NULL THEN 0 ELSE 1 END
        WHERE task_id = p_task AND name = p_step
        RETURNING generation, task_steps.due_at INTO STRICT v_out.generation, v_out.due_at;
        v_out.verdict := CASE WHEN p_limited_after IS NULL THEN 'retry' ELSE 'limited' END;
    END IF;
    RETURN v_out;
END $$
"""

# A hand-off: the step waits (first) or keeps waiting; a check is due at due_at.
_RECORD_HANDOFF = f"""
CREATE FUNCTION planter_record_handoff(
    p_task uuid, p_step text, p_claim uuid, p_wanted text, p_note text, p_early double precision,
    p_first boolean, p_check_after double precision, p_timeout double precision, p_handoff jsonb
) RETURNS planter_recorded LANGUAGE plpgsql AS $$
DECLARE
    r planter_step;
    v_out planter_recorded;
BEGIN
{_LOCKED_CLAIM}
    IF r.task_status IN {_TERMINAL} THEN
        PERFORM planter_stop_step(p_task, p_step, 'the task was ' || r.task_status || ' while the step waited');
        v_out.verdict := 'stopped';
    ELSIF p_first THEN
        -- The run that handed off keeps its claim id: a check records only under the claim it took.
        UPDATE task_steps SET status = 'waiting', heartbeat_at = now(), handoff = p_handoff,
               due_at = now() + make_interval(secs => p_check_after),
               lease_expires_at = now() + make_interval(secs => p_timeout)
        WHERE task_id = p_task AND name = p_step
        RETURNING generation, task_steps.due_at INTO STRICT v_out.generation, v_out.due_at;
        v_out.verdict := 'waiting';
    ELSE
        UPDATE task_steps SET heartbeat_at = now(), handoff = p_handoff,
               due_at = now() + make_interval(secs => p_check_after)
        WHERE task_id = p_task AND name = p_step
        RETURNING generation, task_steps.due_at INTO STRICT v_out.generation, v_out.due_at;
        v_out.verdict := 'waiting';
    END IF;
    RETURN v_out;
END $$
"""

# A lease that has expired is not revived: from then on the reaper or a redelivery may take the
# step over (they decide under the task lock, which a heartbeat does not take). Nor is the lease of
# a step whose task ended (cancelled): the run learns at its next beat that its work is not wanted.
_HEARTBEAT = f"""
CREATE FUNCTION planter_heartbeat(p_task uuid, p_step text, p_claim uuid, p_timeout double precision)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_steps SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => p_timeout)
    WHERE task_id = p_task AND name = p_step AND claim_id = p_claim AND status = 'running'
      AND lease_expires_at > now()
      AND EXISTS (SELECT 1 FROM tasks t WHERE t.id = p_task AND t.status NOT IN {_TERMINAL});
    IF FOUND THEN
        RETURN 'ok';
    END IF;
    RETURN CASE WHEN (SELECT status IN {_TERMINAL} FROM tasks WHERE id = p_task) THEN 'ended' ELSE 'lost' END;
END $$
"""

# A running or waiting step stalls when its lease expired (the run went silent, or the outside work
# outlived its timeout). A pending step, or a waiting step's check, is presumed lost once it has
# been due for the grace period, doubled for each time the reaper already sent it again
# (generation), up to 64 times: a step only waiting in a busy queue gets a few copies, not one
# more every grace period, which would crowd the queue further (docs/DESIGN.md, "The reaper").
_STALLED = """
    ((s.status IN ('running', 'waiting') AND s.lease_expires_at < now())
     OR (s.status IN ('pending', 'waiting')
         AND s.due_at < now() - make_interval(secs => p_grace * power(2, least(s.generation, 6)))))
"""

# The reaper's tick: lock up to p_limit active tasks with stalled steps (skipping tasks in use),
# read their stalled steps again in a statement of its own (the claim's READ COMMITTED reason),
# then fail, re-send under a new generation, or check again each one.
_REAP = f"""
CREATE FUNCTION planter_reap(p_grace double precision, p_limit integer, p_fail_messages jsonb,
                             p_no_attempts_error text, p_retry_error text)
RETURNS TABLE (task_id uuid, name text, status text, priority text, timed_out boolean,
               waited_seconds double precision, action text, generation integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ids uuid[];
    v_failed uuid[] := '{{}}';
    s record;
BEGIN
    v_ids := ARRAY(
        SELECT t.id FROM tasks t
        WHERE t.status NOT IN {_TERMINAL}
          AND EXISTS (SELECT 1 FROM task_steps s WHERE s.task_id = t.id AND {_STALLED})
        ORDER BY t.id LIMIT p_limit
        FOR UPDATE SKIP LOCKED);
    FOR s IN
        SELECT s.task_id, t.priority, s.name, s.status, s.attempts, s.max_attempts,
               coalesce(s.lease_expires_at < now(), false) AS timed_out,
               extract(epoch FROM now() - CASE WHEN s.lease_expires_at < now()
                                               THEN coalesce(s.heartbeat_at, s.started_at)
                                               ELSE s.due_at END)::double precision AS waited_seconds
        FROM task_steps s JOIN tasks t ON t.id = s.task_id
        WHERE s.task_id = ANY(v_ids) AND t.status NOT IN {_TERMINAL} AND {_STALLED}
        ORDER BY s.task_id, s.position
    LOOP
        CONTINUE WHEN s.task_id = ANY(v_failed);  -- failed by an earlier row of this tick
        task_id := s.task_id; name := s.name; status := s.status; priority := s.priority;
        timed_out := s.timed_out; waited_seconds := s.waited_seconds; generation := NULL;
        IF s.timed_out AND s.attempts >= s.max_attempts THEN
            PERFORM planter_fail_task(s.task_id, s.name, p_no_attempts_error, p_fail_messages->>s.name);
            v_failed := v_failed || s.task_id;
            action := 'failed';
        ELSIF s.status = 'waiting' AND NOT s.timed_out THEN
            -- Its check never arrived: checked now, under a new name; it stays waiting.
            UPDATE task_steps u SET generation = u.generation + 1, due_at = now()
            WHERE u.task_id = s.task_id AND u.name = s.name
            RETURNING u.generation INTO STRICT generation;
            action := 'resent';
        ELSE
            UPDATE task_steps u SET status = 'pending', claim_id = NULL, lease_expires_at = NULL,
                   error = coalesce(CASE WHEN s.timed_out THEN p_retry_error END, u.error),
                   due_at = now(), generation = u.generation + 1
            WHERE u.task_id = s.task_id AND u.name = s.name
            RETURNING u.generation INTO STRICT generation;
            action := 'resent';
        END IF;
        RETURN NEXT;
    END LOOP;
END $$
"""

# A progress callback: lock (404 when absent), decide, append once, update only when stored; the
# task as it stands afterwards (its status is the locked one when terminal: 409).
_RECORD_PROGRESS = f"""
CREATE FUNCTION planter_record_progress(
    p_task uuid, p_phases text[], p_status text, p_percent smallint, p_update_id text, p_message text,
    p_org_url text, p_repo_url text, p_deployment_url text, p_gcp_project_id text
) RETURNS SETOF tasks LANGUAGE plpgsql AS $$
DECLARE
    v_locked tasks;
    v_status text;
    v_percent smallint;
BEGIN
    SELECT * INTO v_locked FROM tasks WHERE id = p_task FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_locked.status NOT IN {_TERMINAL} THEN
        v_status := CASE WHEN p_status IS NOT NULL
                              AND array_position(p_phases, p_status) >= array_position(p_phases, v_locked.status)
                         THEN p_status ELSE v_locked.status END;
        v_percent := greatest(p_percent, v_locked.progress_percent);
        INSERT INTO task_progress (task_id, update_id, status, message, progress_percent,
                                   org_url, repo_url, deployment_url, gcp_project_id)
        VALUES (p_task, p_update_id, v_status, p_message, v_percent,
                p_org_url, p_repo_url, p_deployment_url, p_gcp_project_id)
        ON CONFLICT (task_id, update_id) DO NOTHING;
        IF FOUND THEN
            RETURN QUERY
            UPDATE tasks t SET progress_percent = greatest(t.progress_percent, v_percent), message = p_message,
                   status = v_status, org_url = coalesce(p_org_url, t.org_url),
                   repo_url = coalesce(p_repo_url, t.repo_url),
                   deployment_url = coalesce(p_deployment_url, t.deployment_url),
                   gcp_project_id = coalesce(p_gcp_project_id, t.gcp_project_id),
                   updated_at = now(), version = t.version + 1
            WHERE t.id = p_task
            RETURNING t.*;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM tasks WHERE id = p_task;
END $$
"""

_CREATED = [
    _STEP_TYPE,
    _RECORDED,
    _LOCK_STEP,
    _ADD_USAGE,
    _FAIL_TASK,
    _STOP_STEP,
    _CLAIM_STEP,
    _RECORD_SUCCESS,
    _COMPLETE_TASK,
    _RECORD_FAILURE,
    _RECORD_HANDOFF,
    _HEARTBEAT,
    _REAP,
    _RECORD_PROGRESS,
]

_DROPPED = [
    "DROP FUNCTION planter_record_progress(uuid, text[], text, smallint, text, text, text, text, text, text)",
    "DROP FUNCTION planter_reap(double precision, integer, jsonb, text, text)",
    "DROP FUNCTION planter_heartbeat(uuid, text, uuid, double precision)",
    "DROP FUNCTION planter_record_handoff(uuid, text, uuid, text, text, double precision, boolean, double precision,"
    " double precision, jsonb)",
    "DROP FUNCTION planter_record_failure(uuid, text, uuid, text, text, double precision, integer, text, date,"
    " integer[], boolean, double precision, double precision, text)",
    "DROP FUNCTION planter_complete_task(uuid, jsonb, text, jsonb, integer)",
    "DROP FUNCTION planter_record_success(uuid, text, uuid, text, text, double precision, text, jsonb, date,"
    " integer[], text, jsonb, text)",
    "DROP FUNCTION planter_claim_step(uuid, text, uuid, double precision, text, integer, text[], double precision,"
    " double precision, text, text)",
    "DROP FUNCTION planter_stop_step(uuid, text, text)",
    "DROP FUNCTION planter_fail_task(uuid, text, text, text)",
    "DROP FUNCTION planter_add_usage(uuid, date, integer[])",
    "DROP FUNCTION planter_lock_step(uuid, text, double precision)",
    "DROP TYPE planter_recorded",
    "DROP TYPE planter_step",
]


def upgrade() -> None:
    for statement in _CREATED:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DROPPED:
        op.execute(statement)
