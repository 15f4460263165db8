"""The dashboard page in a real browser: Debian's Chromium (installed by `make browser`, part of
`make test`) driven by Playwright with executable_path, against the whole local stack.

It signs in with the link `make dev` prints (the token in the URL fragment), plants a project
through the page's form, watches its bar reach 100 % without a reload, sees a failing task shown
as failed with its error, retries it, and saves screenshots to .local/screenshots/. The page runs
on the event stream there; a second test takes the stream tokens away (a 404 through Playwright's
request routing, as a server without them answers) and sees the polling fallback do the same; a
third works the side panels (profile, jobs' pause and resume, the assistant, insights, step stats).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import make_token
from tests.e2e.conftest import Api

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".local" / "screenshots"
# Each step of a project planted through the form takes this long, so the bar is seen moving.
FORM_STEP_SECONDS = 1.2


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: `make browser` (run by `make test`) installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    problems: list[str] = []
    # Errors the page logs (a CSP refusal, an exception); not the browser's own line for each 4xx,
    # which routes that have not shipped yet answer by design.
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and not m.text.startswith("Failed to load resource") else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    yield page
    context.close()


def _shot(page: Any, name: str, selector: str | None = None) -> pathlib.Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    if selector:
        page.locator(selector).screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


# Waits use locators and expect(), not wait_for_function: the page's CSP (no 'unsafe-eval') refuses
# the string predicates that wait_for_function re-evaluates in the page.


def _card(page: Any, task_id: str) -> Any:
    return page.locator(f'#live-tasks article[data-task-id="{task_id}"]')


def _slow_form_projects(route: Any) -> None:
    """The page's form offers no `simulate`; the test adds step timings to what it sends."""
    request = route.request
    if request.method != "POST":
        route.continue_()
        return
    body = json.loads(request.post_data or "{}")
    body["simulate"] = {"step_seconds": FORM_STEP_SECONDS}
    route.continue_(post_data=json.dumps(body))


def _no_such_route(route: Any) -> None:
    route.fulfill(
        status=404,
        content_type="application/problem+json",
        body=json.dumps({"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no route"}),
    )


def _sign_in(page: Any, api: Api, email: str) -> None:
    token = make_token(email, exp=int(time.time()) + 3600)
    page.goto(f"{api.base_url}/#token={token}")
    page.wait_for_selector("#app:not([hidden])", timeout=15_000)
    # The token left the address bar at once and lives in this tab's sessionStorage only.
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('planter.token')") == token
    expect(page.locator("#who-email")).to_have_text(email)


def test_plant_watch_fail_and_retry_in_a_real_browser(page: Any, api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    email = f"browser-{uuid.uuid4().hex[:8]}@example.com"
    _sign_in(page, api, email)
    # The server has stream tokens and the event routes: the page listens instead of polling.
    expect(page.locator("#live-mode")).to_have_text("live")
    page.evaluate("window.plantedWithoutReload = true")  # a reload would drop this

    # Plant a project through the form.
    page.route("**/api/v1/projects", _slow_form_projects)
    page.fill("#create-name", "Browser Planted")
    page.fill("#create-description", "Planted by the browser test")
    with page.expect_response("**/api/v1/projects") as created:
        page.click("#create-submit")
    assert created.value.status == 202
    task_id = created.value.json()["task_id"]
    card = _card(page, task_id)
    card.wait_for(timeout=10_000)
    assert card.locator("h3").text_content() == "Browser Planted"

    # Its bar moves up to 100 % while the page stays loaded.
    seen: list[int] = []
    midway: pathlib.Path | None = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        value = int(card.locator(".bar").first.get_attribute("aria-valuenow") or 0)
        if not seen or value != seen[-1]:
            seen.append(value)
        if midway is None and 30 <= value < 100 and card.locator(".step.running").count():
            midway = _shot(page, "active-task-midway.png")
        if value == 100 and card.get_attribute("data-status") == "completed":
            break
        time.sleep(0.2)
    assert seen[-1] == 100, seen
    assert seen == sorted(seen), f"the bar went down: {seen}"
    assert any(0 < v < 100 for v in seen), f"never seen mid-way: {seen}"
    assert midway is not None
    assert page.evaluate("window.plantedWithoutReload") is True
    states = card.locator(".step").evaluate_all("steps => steps.map(s => s.dataset.state)")
    assert states and set(states) == {"done"}, states
    assert api.task(email, task_id)["status"] == "completed"

    # A task that cannot succeed (more failures than attempts), created through the API.
    failing = api.create(email, "Doomed Deploy", step_seconds=0.2, fail_step="deploying", failures=50)
    failed_card = _card(page, failing["task_id"])
    failed_card.wait_for(timeout=30_000)
    page.wait_for_selector(
        f'#live-tasks article[data-task-id="{failing["task_id"]}"][data-status="failed"]', timeout=90_000
    )
    outcome = api.task(email, failing["task_id"])
    assert outcome["status"] == "failed" and outcome["error_message"]
    failure = failed_card.locator(".failure")
    assert failure.is_visible()
    assert outcome["error_message"] in failure.locator(".failure-error").text_content()
    assert failed_card.locator('.step[data-step="deploying"]').get_attribute("data-state") == "failed"
    assert failed_card.locator(".badge.status").text_content() == "Failed"
    # The figures follow without a reload.
    expect(page.locator(".metric", has_text="Failed this week").locator(".metric-value")).to_have_text("1")
    expect(page.locator('#charts figure[data-metric="tasks_failed"] .chart-figure')).to_have_text("1")
    _shot(page, "failed-task.png")

    # Retry: a new task with the same input, shown live beside the failed one.
    with page.expect_response("**/api/v1/projects") as retried:
        failure.get_by_role("button", name="Retry").click()
    assert retried.value.status == 202
    retry = retried.value.json()
    assert retry["task_id"] != failing["task_id"] and retry["project_name"] == "Doomed Deploy"
    _card(page, retry["task_id"]).wait_for(timeout=10_000)

    # Teardown starts a teardown task of the failed project (POST /api/v1/tasks is served).
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/tasks")) as torn:
        failure.get_by_role("button", name="Teardown").click()
    assert torn.value.status == 202, torn.value.text()
    teardown = torn.value.json()
    assert teardown["type"] == "teardown" and teardown["payload"]["project_task_id"] == failing["task_id"]
    # The Retry's toast may still show: wait for the Teardown's own text, not any toast.
    expect(page.locator("#toast")).to_have_text("Teardown started.", timeout=10_000)
    page.wait_for_selector("#toast", state="hidden", timeout=10_000)
    assert api.wait_terminal(email, teardown["task_id"])["status"] == "completed"

    # History lists both; the charts are drawn as inline SVG.
    page.wait_for_selector(f'#history-rows tr[data-task-id="{failing["task_id"]}"]', timeout=10_000)
    assert page.locator(f'#history-rows tr[data-task-id="{task_id}"]').count() == 1
    expect(page.locator("#charts figure svg")).to_have_count(6)
    created_bars = page.locator('#charts figure[data-metric="tasks_created"] rect')
    assert sum(float(h) for h in created_bars.evaluate_all("rs => rs.map(r => r.getAttribute('height'))")) > 0
    page.wait_for_timeout(800)  # the bars' transition
    _shot(page, "charts.png", "#charts-card")
    _shot(page, "dashboard.png")
    with capsys.disabled():  # shown by a plain `make test` too, not only with -s
        print(f"\ndashboard screenshots in {SCREENSHOTS}")
    assert page.problems == [], page.problems


def test_text_rendering_history_pages_and_a_bad_token(page: Any, api: Api) -> None:
    email = f"xss-{uuid.uuid4().hex[:8]}@example.com"
    cancelled = []
    for number in range(11):  # more than one page of history (10 a page), ended at once
        task = api.create(email, f"Old Project {number}", step_seconds=5)
        assert api.cancel(email, task["task_id"]).status_code == 200
        cancelled.append(task["task_id"])
    earlier = api.create(email, "Failed Before", fail_step="creating_org", failures=50)
    assert api.wait_terminal(email, earlier["task_id"])["status"] == "failed"
    name = "<img src=x onerror=alert(1)> Shop"
    running = api.create(email, name, step_seconds=1)
    # A server without stream tokens (as before issue 18's streams): the page polls instead.
    page.route("**/api/v1/stream-tokens", _no_such_route)
    _sign_in(page, api, email)
    expect(page.locator("#live-mode")).to_have_text("polling every 1.5 s")

    # A failure from before the page opened is in view on arrival, until dismissed.
    before = _card(page, earlier["task_id"])
    before.wait_for(timeout=10_000)
    assert before.get_attribute("data-status") == "failed" and before.locator(".failure").is_visible()
    before.get_by_role("button", name="Dismiss").click()
    expect(before).to_have_count(0)

    # Data is text: a name that looks like markup is shown as such and makes no element.
    card = page.locator("#live-tasks article", has_text="onerror")
    card.wait_for(timeout=10_000)
    assert card.locator("h3").text_content() == name
    assert page.locator("#live-tasks img").count() == 0
    # Polling follows it to the end as well.
    expect(_card(page, running["task_id"])).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.locator(".metric", has_text="Done today").locator(".metric-value")).to_have_text("1")
    page.wait_for_timeout(1000)  # the history reload that the same change started has landed too

    # History: newest first, 10 a page, the next page through the cursor, a status filter.
    rows = page.locator("#history-rows tr")
    assert rows.count() == 10
    assert rows.first.locator("td").first.text_content() == name
    page.click("#history-more")
    expect(rows).to_have_count(13)
    assert page.locator("#history-more").is_hidden()
    listed = rows.evaluate_all("rs => rs.map(r => r.dataset.taskId)")
    assert set(cancelled) <= set(listed) and len(set(listed)) == 13
    page.select_option("#history-filter", "completed")
    expect(rows).to_have_count(1)
    assert rows.first.locator("td").first.text_content() == name

    page.reload()  # dismissed stays dismissed in this tab
    page.wait_for_selector("#app:not([hidden])", timeout=15_000)
    # Boot draws the live panel right after the first history page (one microtask later).
    expect(page.locator("#history-rows tr")).to_have_count(10)
    assert _card(page, earlier["task_id"]).count() == 0
    assert page.locator("#live-empty").is_visible()

    # A refused token in a fresh load. Not sessionStorage.setItem + reload: the open page's polling
    # could send the bad token in between, and its 401 rightly clears the session before the reload.
    page.goto(f"{api.base_url}/?again#token=not-a-token")
    page.wait_for_selector("#sign-in:not([hidden])", timeout=10_000)
    expect(page.locator("#sign-in-error")).to_contain_text("refused")
    assert page.locator("#app").is_hidden()
    _shot(page, "sign-in.png")


def test_profile_jobs_assistant_insights_and_step_stats_panels(page: Any, api: Api) -> None:
    """The side panels against the routes they read, all served now: none says "not available"."""
    email = f"panels-{uuid.uuid4().hex[:8]}@example.com"
    planted = api.create(email, "Panel Project", step_seconds=0.05)
    assert api.wait_terminal(email, planted["task_id"])["status"] == "completed"
    body = {"name": "Nightly redeploy", "schedule": "0 3 * * *", "task": {"type": "create_project",
            "payload": {"project_name": "Nightly"}}}  # fmt: skip
    job = api.session.post(f"{api.base_url}/api/v1/jobs", json=body, headers=api.headers(email), timeout=10)
    assert job.status_code == 201, job.text
    job_url = f"{api.base_url}/api/v1/jobs/{job.json()['job_id']}"
    _sign_in(page, api, email)

    # The profile: who, the plan and this period's usage.
    expect(page.locator("#profile")).to_contain_text(email)
    expect(page.locator("#profile")).to_contain_text("free")
    expect(page.locator("#who-tier")).to_contain_text("free")

    # Jobs: pause, then resume, each reaching the server.
    row = page.locator("#jobs li.job", has_text="Nightly redeploy")
    expect(row.locator(".badge")).to_have_text("active", timeout=10_000)
    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge")).to_have_text("paused")
    assert api.session.get(job_url, headers=api.headers(email), timeout=10).json()["status"] == "paused"
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge")).to_have_text("active")
    assert api.session.get(job_url, headers=api.headers(email), timeout=10).json()["status"] == "active"

    # The assistant answers in the page (the Gemini stand-in behind it).
    page.fill("#chat-input", "How is my last project doing?")
    page.press("#chat-input", "Enter")
    reply = page.locator("#chat-log .chat-message.assistant p")
    expect(reply).to_have_count(1, timeout=30_000)
    assert (reply.text_content() or "").strip()
    assert page.locator("#chat-error").text_content() == ""

    # Insights and step statistics are drawn from their routes (the finished pipeline's steps).
    expect(page.locator("#step-stats table tbody tr")).to_have_count(6, timeout=10_000)
    expect(page.locator("#insights .insight", has_text="Quota forecast")).to_have_count(1, timeout=30_000)
    expect(page.locator(".unavailable")).to_have_count(0)
    _shot(page, "panels.png")
    assert page.problems == [], page.problems
