// Live tasks (progress bars, step timelines, failures with Retry and Teardown), the create form
// and the history table.
"use strict";

(function (P) {
  const { el, $ } = P;
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const STEP_LABEL = {
    pending: "queued", running: "running", waiting: "waiting",
    succeeded: "done", failed: "failed", skipped: "skipped",
  };
  const KEEP_FINISHED = 6; // finished tasks kept on the live panel (newest first) until dismissed

  const tracked = new Map(); // task_id -> the full task object
  // Dismissed cards stay dismissed for this tab (ids only; nothing secret).
  const DISMISSED_KEY = "planter.dismissed";
  const dismissed = new Set(JSON.parse(sessionStorage.getItem(DISMISSED_KEY) || "[]"));
  P.isTerminal = (task) => TERMINAL.has(task.status);

  const humanize = (name) => (name || "").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

  // Only http(s) links are rendered as links: a "javascript:" URL in data stays text.
  function link(url, label) {
    if (typeof url !== "string" || !/^https?:\/\//i.test(url)) return null;
    return el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, label);
  }

  function statusKind(task) {
    if (task.status === "completed") return "ok";
    if (task.status === "failed") return "bad";
    if (task.status === "cancelled") return "off";
    return "run";
  }

  function statusText(task) {
    if (P.isTerminal(task)) return humanize(task.status);
    return task.status === "initializing" ? "Starting" : humanize(task.status);
  }

  P.progressBar = function (percent, kind, label) {
    const value = Math.max(0, Math.min(100, Math.round(percent || 0)));
    const fill = el("div", { class: `fill ${kind}` });
    fill.style.width = `${value}%`; // CSSOM, allowed by the CSP (no inline style attribute)
    return el("div", {
      class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-valuenow": value, "aria-label": label || "Progress",
    }, fill);
  };

  function stepTimeline(task) {
    const steps = task.steps || [];
    if (!steps.length) return null;
    return el("ol", { class: "timeline" }, steps.map((step) => {
      const state = STEP_LABEL[step.status] || step.status;
      const facts = [];
      if (step.attempts > 1 || (step.attempts === 1 && step.status === "failed")) facts.push(`attempt ${step.attempts}`);
      if (step.started_at) facts.push(P.duration(step.started_at, step.finished_at));
      // A failed task's error is in its failure box; here, errors of attempts that were retried.
      const error = step.error && task.status !== "failed" ? step.error : null;
      return el("li", { class: `step ${step.status}`, dataset: { step: step.name, state } },
        el("span", { class: "dot", "aria-hidden": "true" }),
        el("span", { class: "step-name" }, humanize(step.name)),
        el("span", { class: "step-line" },
          el("span", { class: `step-state ${step.status}` }, state),
          el("span", { class: "step-facts" }, facts.join(" · "))),
        error ? el("p", { class: "step-error" }, error) : null);
    }));
  }

  function failureBox(task) {
    const failedStep = (task.steps || []).find((s) => s.status === "failed");
    const where = failedStep ? ` at ${humanize(failedStep.name).toLowerCase()}` : "";
    return el("div", { class: "failure", role: "alert" },
      el("strong", {}, `Failed${where}`),
      el("p", { class: "failure-error" }, task.error_message || task.error || (failedStep && failedStep.error) || "No error was recorded."),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "primary", onclick: () => retry(task) }, "Retry"),
        el("button", { type: "button", class: "danger", onclick: () => teardown(task) }, "Teardown")));
  }

  function taskCard(task) {
    const kind = statusKind(task);
    const percent = Math.round(task.progress_percent || 0);
    const links = [link(task.repo_url, "Repository"), link(task.deployment_url, "Deployment"), link(task.org_url, "Organization")]
      .filter(Boolean);
    const actions = el("div", { class: "card-actions" });
    if (!P.isTerminal(task)) {
      actions.appendChild(el("button", { type: "button", class: "link", onclick: () => cancel(task) }, "Cancel"));
    } else {
      actions.appendChild(el("button", { type: "button", class: "link", onclick: () => dismiss(task.task_id) }, "Dismiss"));
    }
    return el("article", { class: `task ${kind}`, dataset: { taskId: task.task_id, status: task.status } },
      el("div", { class: "task-head" },
        el("h3", {}, task.project_name || humanize(task.type) || "Task"),
        task.type && task.type !== "create_project" ? el("span", { class: "badge" }, humanize(task.type)) : null,
        el("span", { class: `badge status ${kind}` }, statusText(task)),
        el("span", { class: "percent" }, `${percent} %`),
        actions),
      P.progressBar(percent, kind, `Progress of ${task.project_name || "the task"}`),
      el("p", { class: "message" }, task.message || "",
        el("span", { class: "muted" }, ` · started ${P.when(task.created_at)}`,
          P.isTerminal(task) ? ` · took ${P.duration(task.created_at, task.completed_at || task.failed_at || task.cancelled_at)}` : "")),
      links.length ? el("p", { class: "links" }, links) : null,
      task.status === "failed" ? failureBox(task) : null,
      stepTimeline(task));
  }

  P.renderLive = function () {
    const container = $("live-tasks");
    const tasks = [...tracked.values()].filter((t) => !dismissed.has(t.task_id));
    const active = tasks.filter((t) => !P.isTerminal(t));
    const finished = tasks.filter(P.isTerminal)
      .sort((a, b) => (b.updated_at || "").localeCompare(a.updated_at || "")).slice(0, KEEP_FINISHED);
    const shown = [...active.sort((a, b) => (a.created_at || "").localeCompare(b.created_at || "")), ...finished];
    const cards = new Map([...container.children].map((c) => [c.dataset.taskId, c]));
    P.clear(container);
    for (const task of shown) {
      const old = cards.get(task.task_id);
      // Rebuilt only when the task changed: an unchanged card keeps its focus and selection.
      const version = `${task.updated_at}|${task.status}|${task.progress_percent}`;
      const card = old && old.dataset.version === version ? old : taskCard(task);
      card.dataset.version = version;
      container.appendChild(card);
    }
    $("live-empty").hidden = shown.length > 0;
    // History rows of tracked tasks show the same state as their live card.
    for (const row of [...$("history-rows").children]) {
      const task = tracked.get(row.dataset.taskId);
      if (task && row.dataset.version !== `${task.updated_at}|${task.progress_percent}`) row.replaceWith(historyRow(task));
    }
  };

  // keepDismissed: a task the page brings back on its own (a past failure) stays dismissed;
  // one the user acts on (creates, retries, opens) is shown again.
  P.track = function (task, keepDismissed) {
    const before = tracked.get(task.task_id);
    tracked.set(task.task_id, task);
    if (!keepDismissed) dismissed.delete(task.task_id);
    return !before || before.status !== task.status;
  };
  P.trackedIds = () => [...tracked.keys()];
  P.trackedTask = (id) => tracked.get(id);

  // The full task (with steps) replaces what the page had; true when its status changed.
  P.refreshTask = async function (taskId, keepDismissed) {
    const task = await P.get(`/api/v1/tasks/${encodeURIComponent(taskId)}`);
    return P.track(task, keepDismissed);
  };

  function dismiss(taskId) {
    dismissed.add(taskId);
    sessionStorage.setItem(DISMISSED_KEY, JSON.stringify([...dismissed].slice(-200)));
    P.renderLive();
  }

  async function act(label, work) {
    try {
      await work();
    } catch (error) {
      if (P.isMissingRoute(error) && error.status === 405) P.toast(`${label} is not available on this server yet.`, "bad");
      else P.toast(`${label} failed: ${error.message}`, "bad");
    }
  }

  async function cancel(task) {
    await act("Cancel", async () => {
      P.track(await P.post(`/api/v1/tasks/${encodeURIComponent(task.task_id)}/cancel`));
      P.renderLive();
      P.afterChange();
    });
  }

  // Retry: a new task with the same input (the old one stays failed, as history).
  async function retry(task) {
    await act("Retry", async () => {
      let created;
      if (!task.type || task.type === "create_project") {
        const body = { project_name: task.project_name, project_description: task.project_description || "", mode: task.mode || "saas" };
        if (task.payload && task.payload.template) body.template = task.payload.template;
        created = await P.post("/api/v1/projects", body, { "Idempotency-Key": P.newKey() });
      } else {
        created = await P.post("/api/v1/tasks", { type: task.type, payload: task.payload || {}, priority: task.priority || "normal" },
          { "Idempotency-Key": P.newKey() });
      }
      P.track(created);
      P.renderLive();
      P.toast(`Retrying ${task.project_name || "the task"} as a new task.`, "ok");
      P.afterChange();
    });
  }

  async function teardown(task) {
    await act("Teardown", async () => {
      const created = await P.post("/api/v1/tasks", { type: "teardown", payload: { project_task_id: task.task_id } },
        { "Idempotency-Key": P.newKey() });
      P.track(created);
      P.renderLive();
      P.toast("Teardown started.", "ok");
      P.afterChange();
    });
  }

  // --- the create form -----------------------------------------------------------------------

  P.loadTemplates = async function () {
    try {
      const data = await P.get("/api/v1/templates");
      const select = P.clear($("create-template"));
      for (const t of data.templates || []) {
        select.appendChild(el("option", { value: t.name, selected: t.default }, t.description ? `${t.name} — ${t.description}` : t.name));
      }
      $("create-template-field").hidden = !(data.templates || []).length;
    } catch (error) {
      $("create-template-field").hidden = true; // no templates route yet: the server's default
      if (!P.isMissingRoute(error)) throw error;
    }
  };

  P.bindCreateForm = function () {
    $("create-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const submit = $("create-submit");
      $("create-error").textContent = "";
      const body = { project_name: $("create-name").value.trim(), project_description: $("create-description").value.trim() };
      if (!$("create-template-field").hidden && $("create-template").value) body.template = $("create-template").value;
      submit.disabled = true;
      try {
        const task = await P.post("/api/v1/projects", body, { "Idempotency-Key": P.newKey() });
        P.track(task);
        P.renderLive();
        $("create-form").reset();
        P.toast(`Planting ${task.project_name}…`, "ok");
        P.afterChange();
      } catch (error) {
        const fields = error.problem && error.problem.errors ? Object.values(error.problem.errors).join("; ") : "";
        $("create-error").textContent = fields ? `${error.message}: ${fields}` : error.message;
      } finally {
        submit.disabled = false;
      }
    });
  };

  // --- history -------------------------------------------------------------------------------

  let historyCursor = null;

  function historyRow(task) {
    const kind = statusKind(task);
    return el("tr", { dataset: { taskId: task.task_id, version: `${task.updated_at}|${task.progress_percent}` } },
      el("td", {}, task.project_name || humanize(task.type)),
      el("td", {}, el("span", { class: `badge status ${kind}` }, statusText(task))),
      el("td", { class: "mini" }, P.progressBar(task.progress_percent, kind), el("span", { class: "muted" }, `${Math.round(task.progress_percent || 0)} %`)),
      el("td", { class: "muted" }, P.when(task.created_at)),
      el("td", {}, el("button", { type: "button", class: "link", onclick: () => open(task.task_id) }, "Open")));
  }

  async function open(taskId) {
    await act("Open", async () => {
      await P.refreshTask(taskId);
      P.renderLive();
      const card = document.querySelector(`#live-tasks [data-task-id="${CSS.escape(taskId)}"]`);
      if (card) card.scrollIntoView({ behavior: "smooth", block: "center" });
    });
  }

  P.loadHistory = async function (more) {
    const status = $("history-filter").value;
    const params = new URLSearchParams({ limit: "10" });
    if (status) params.set("status", status);
    if (more && historyCursor) params.set("cursor", historyCursor);
    const data = await P.get(`/api/v1/tasks?${params}`);
    const rows = $("history-rows");
    if (!more) P.clear(rows);
    for (const task of data.tasks || []) rows.appendChild(historyRow(task));
    historyCursor = data.next_cursor || null;
    $("history-more").hidden = !historyCursor;
    $("history-empty").hidden = rows.children.length > 0;
    return data.tasks || [];
  };

  P.bindHistory = function () {
    $("history-filter").addEventListener("change", () => P.loadHistory(false).catch((e) => P.toast(e.message, "bad")));
    $("history-more").addEventListener("click", () => P.loadHistory(true).catch((e) => P.toast(e.message, "bad")));
  };
})(window.Planter);
