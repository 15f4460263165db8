// Boot: sign-in (a pasted token, or make dev's link with #token=... in the fragment), then the
// live loop: the server's event stream when it offers stream tokens, else polling every 1.5 s.
"use strict";

(function (P) {
  const { $ } = P;
  const POLL_MS = 1500;
  const SAFETY_SYNC_MS = 15000; // with the stream: a full sync now and then, in case an event was lost
  let loop = null; // {stop()} of the running live loop
  const seenIds = new Set(); // tasks the page knew about: a new one in the recent list gets tracked

  // The fragment never reaches a server (nor its logs); it is dropped from the address bar at once.
  function takeTokenFromFragment() {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (!match) return;
    P.session.set(decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function showSignIn(message) {
    if (loop) loop.stop();
    loop = null;
    $("app").hidden = true;
    $("who").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
  }

  P.onUnauthorized = function () {
    P.session.clear();
    showSignIn("Your token was refused or has expired. Sign in again.");
  };

  // Reloads of what a task's change moves: history, figures and charts (coalesced).
  let refreshTimer = null;
  P.afterChange = function () {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      P.loadHistory(false).catch(() => {});
      P.loadMetrics().catch(() => {});
      P.loadCharts().catch(() => {});
      P.loadStepStats().catch(() => {});
      P.loadProfile().catch(() => {});
    }, 600);
  };

  // One full sync: active tasks (with their steps), tasks that just ended, and new ones made elsewhere.
  async function loadSummary() {
    const active = await P.get(`/api/v1/dashboard/active-tasks?tz=${encodeURIComponent(P.zone())}`);
    $("live-summary").textContent =
      `${active.total_active} active · ${active.total_completed_today} done today · ${active.total_failed_today} failed today`;
    return active;
  }

  async function sync() {
    const active = await loadSummary();
    const activeIds = new Set(active.active_tasks.map((t) => t.task_id));
    const refresh = new Set(activeIds);
    for (const id of P.trackedIds()) {
      const task = P.trackedTask(id);
      if (!P.isTerminal(task) && !activeIds.has(id)) refresh.add(id); // it just ended: read its outcome
    }
    const recent = await P.get("/api/v1/tasks?limit=10");
    let changed = false;
    for (const task of recent.tasks || []) {
      if (!seenIds.has(task.task_id) && !P.trackedTask(task.task_id)) changed = P.track(task, true) || changed;
      seenIds.add(task.task_id);
    }
    const results = await Promise.allSettled([...refresh].map((id) => P.refreshTask(id, true)));
    changed = results.some((r) => r.status === "fulfilled" && r.value) || changed;
    P.renderLive();
    if (changed) P.afterChange();
  }

  function startPolling() {
    let timer = null, stopped = false;
    const tick = async () => {
      // A hidden tab does not poll (its next look is one tick away once it is shown again).
      if (document.hidden) { timer = setTimeout(tick, POLL_MS); return; }
      try { await sync(); } catch (error) { if (!(error instanceof P.ApiError && error.status === 401)) $("live-mode").textContent = "reconnecting…"; }
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    };
    $("live-mode").textContent = `polling every ${POLL_MS / 1000} s`;
    tick();
    return { stop() { stopped = true; clearTimeout(timer); } };
  }

  // The caller's event stream: each `task` event re-reads that task. The stream closes by itself
  // within a minute; a new stream token is fetched for each reconnection (tokens are short-lived).
  async function startStream() {
    let source = null, stopped = false, safety = null, retryTimer = null;
    const pending = new Set();
    let flush = null;
    const open = async () => {
      const grant = await P.post("/api/v1/stream-tokens");
      if (stopped) return;
      source = new EventSource(`/api/v1/events?access_token=${encodeURIComponent(grant.token)}`);
      source.addEventListener("open", () => { $("live-mode").textContent = "live"; sync().catch(() => {}); });
      source.addEventListener("task", (event) => {
        const data = JSON.parse(event.data);
        pending.add(data.task_id);
        if (flush) return; // a read is already due: it takes this task too (at most ~10 reads a second)
        flush = setTimeout(async () => {
          flush = null;
          const ids = [...pending];
          pending.clear();
          const results = await Promise.allSettled([...ids.map((id) => P.refreshTask(id, true)), loadSummary()]);
          P.renderLive();
          if (results.slice(0, ids.length).some((r) => r.status === "fulfilled" && r.value)) P.afterChange();
        }, 100);
      });
      source.addEventListener("error", () => {
        source.close();
        if (stopped) return;
        $("live-mode").textContent = "reconnecting…";
        retryTimer = setTimeout(() => open().catch(() => { retryTimer = setTimeout(open, 3000); }), 1000);
      });
    };
    await open(); // throws when the server has no stream tokens: the caller falls back to polling
    safety = setInterval(() => sync().catch(() => {}), SAFETY_SYNC_MS);
    return { stop() { stopped = true; clearInterval(safety); clearTimeout(retryTimer); if (source) source.close(); } };
  }

  async function startLive() {
    try {
      return await startStream();
    } catch (error) {
      if (!P.isMissingRoute(error)) console.warn("event stream unavailable, polling instead:", error.message);
      return startPolling();
    }
  }

  async function enter() {
    $("sign-in").hidden = true;
    // The first call checks the token (a 401 brings the sign-in back) and names the user.
    const metricsLoaded = P.loadMetrics();
    try {
      await metricsLoaded;
    } catch (error) {
      if (error instanceof P.ApiError && error.status === 401) return;
      showSignIn(`Could not reach Planter: ${error.message}`);
      return;
    }
    $("app").hidden = false;
    $("who").hidden = false;
    const first = await P.loadHistory(false).catch(() => []);
    for (const task of first) seenIds.add(task.task_id);
    // A failure of the last day stays in view on arrival (with Retry and Teardown) until dismissed.
    const dayAgo = Date.now() - 24 * 3600 * 1000;
    for (const task of first) {
      if (task.status === "failed" && task.failed_at && new Date(task.failed_at).getTime() > dayAgo) P.track(task, true);
    }
    P.renderLive();
    P.loadTemplates().catch(() => {});
    P.loadCharts().catch((e) => P.failed($("charts"), e));
    P.loadProfile();
    P.loadInsights();
    P.loadStepStats();
    P.loadJobs();
    loop = await startLive();
  }

  function boot() {
    takeTokenFromFragment();
    P.bindCreateForm();
    P.bindHistory();
    P.bindChat();
    $("charts-range").addEventListener("change", () => P.loadCharts().catch((e) => P.failed($("charts"), e)));
    $("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      P.session.set(token);
      $("token-input").value = "";
      enter();
    });
    $("sign-out").addEventListener("click", () => {
      P.session.clear();
      showSignIn("Signed out.");
    });
    if (P.session.token()) enter();
    else showSignIn("");
  }

  document.addEventListener("DOMContentLoaded", boot);
})(window.Planter);
