// The side panels: metrics cards, profile and usage, insights, step statistics, jobs and the
// assistant. A panel whose route this server lacks (404/405) says "not available" and stays quiet.
"use strict";

(function (P) {
  const { el, $ } = P;

  function card(label, value, note, kind) {
    return el("div", { class: `metric ${kind || ""}` },
      el("span", { class: "metric-label" }, label),
      el("span", { class: "metric-value" }, value),
      note ? el("span", { class: "metric-note" }, note) : null);
  }

  const fmt = (n, digits) => (n === null || n === undefined ? "—" : Number(n).toFixed(digits || 0));

  P.loadMetrics = async function () {
    const m = await P.get(`/api/v1/dashboard/metrics?tz=${encodeURIComponent(P.zone())}`);
    const h = m.project_health || {}, c = m.cost_metrics || {};
    const score = Number(h.health_score || 0);
    const limit = c.monthly_operations_limit;
    const used = Number(c.operations_used_percent || 0);
    const usage = el("div", { class: "metric wide" },
      el("span", { class: "metric-label" }, "AI operations this month"),
      el("span", { class: "metric-value" }, `${c.total_ai_operations || 0}`, el("small", {}, limit === -1 ? " / unlimited" : ` / ${limit}`)),
      limit === -1 ? null : P.progressBar(used, used >= 90 ? "bad" : used >= 70 ? "warn" : "ok", "AI operations used"));
    P.append(P.clear($("metrics")), [
      card("Health", fmt(score), "out of 100", score >= 80 ? "ok" : score >= 50 ? "warn" : "bad"),
      card("Success (30 d)", h.success_rate_30d === null || h.success_rate_30d === undefined ? "—" : `${fmt(h.success_rate_30d, 0)} %`),
      card("Active", fmt(h.active_tasks)),
      card("Done today", fmt(h.tasks_completed_today)),
      card("Failed this week", fmt(h.tasks_failed_this_week), null, h.tasks_failed_this_week ? "bad" : ""),
      card("Avg. time", h.avg_completion_minutes ? `${fmt(h.avg_completion_minutes, 1)} min` : "—"),
      usage,
      card("Est. cost this month", `$${fmt(c.estimated_monthly_cost, 2)}`, `${c.projects_created_count || 0} projects planted`),
    ]);
    $("who-tier").textContent = m.subscription_tier || "";
    $("who-email").textContent = m.user_email || "";
    return m;
  };

  P.loadProfile = async function () {
    const box = $("profile");
    let me;
    try {
      me = await P.get("/api/v1/me");
    } catch (error) {
      if (!P.isMissingRoute(error)) return P.failed(box, error);
      return P.unavailable(box, "The profile");
    }
    const sub = me.subscription || {}, usage = me.usage || {};
    const nameInput = el("input", { value: me.name || "", maxlength: 200, "aria-label": "Display name", placeholder: "Your name" });
    const form = el("form", { class: "inline-form" }, nameInput, el("button", { type: "submit", class: "secondary" }, "Save"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await P.request("PATCH", "/api/v1/me", { name: nameInput.value.trim() });
        P.toast("Name saved.", "ok");
      } catch (error) {
        P.toast(`Could not save: ${error.message}`, "bad");
      }
    });
    const limit = sub.monthly_operations_limit;
    P.append(P.clear(box), [
      el("dl", { class: "facts" },
        el("dt", {}, "Email"), el("dd", {}, me.email || ""),
        el("dt", {}, "Plan"), el("dd", {}, `${sub.tier || "free"}${sub.price_usd_per_month ? ` · $${sub.price_usd_per_month}/month` : ""}`),
        el("dt", {}, "Period"), el("dd", {}, sub.period_start ? `${P.when(sub.period_start)} – ${P.when(sub.period_end)}` : "—"),
        el("dt", {}, "AI operations"), el("dd", {}, `${usage.ai_operations || 0}${usage.reserved_ai_operations ? ` (+${usage.reserved_ai_operations} reserved)` : ""} of ${limit === -1 ? "unlimited" : limit}`),
        el("dt", {}, "Projects"), el("dd", {}, String(usage.projects_created || 0)),
        el("dt", {}, "Issues generated"), el("dd", {}, String(usage.issues_generated || 0))),
      form,
    ]);
  };

  P.loadInsights = async function () {
    const box = $("insights");
    let data;
    try {
      data = await P.get(`/api/v1/dashboard/insights`);
    } catch (error) {
      if (!P.isMissingRoute(error)) return P.failed(box, error);
      return P.unavailable(box, "Insights");
    }
    const items = data.insights || [];
    P.append(P.clear(box), [
      items.length ? null : el("p", { class: "muted" }, "No insights yet: plant a few projects."),
      items.map((i) => el("article", { class: "insight" },
        el("h3", {}, i.title || i.type),
        el("p", {}, i.description || ""),
        (i.recommendations || []).length ? el("ul", {}, i.recommendations.map((r) => el("li", {}, r))) : null,
        el("span", { class: "muted" }, `confidence ${Math.round((i.confidence || 0) * 100)} %`))),
      data.stale ? el("p", { class: "muted" }, "The assistant is unreachable: showing the last insights.") : null,
    ]);
  };

  P.loadStepStats = async function () {
    const box = $("step-stats");
    let data;
    try {
      data = await P.get("/api/v1/dashboard/steps?days=30");
    } catch (error) {
      if (!P.isMissingRoute(error)) return P.failed(box, error);
      return P.unavailable(box, "Step statistics");
    }
    const steps = data.steps || [];
    if (!steps.length) return P.append(P.clear(box), [el("p", { class: "muted" }, "No finished steps yet.")]);
    P.append(P.clear(box), [el("table", { class: "compact" },
      el("thead", {}, el("tr", {}, ["Step", "Runs", "Failed", "p50", "Share"].map((h) => el("th", {}, h)))),
      el("tbody", {}, steps.map((s) => el("tr", {},
        el("td", {}, s.name.replace(/_/g, " ")),
        el("td", {}, String(s.runs)),
        el("td", { class: s.failed ? "bad-text" : "" }, `${s.failed} (${Math.round((s.failure_rate || 0) * 100)} %)`),
        el("td", {}, `${fmt(s.p50_seconds, 1)} s`),
        el("td", { class: "mini" }, P.progressBar((s.share_of_time || 0) * 100, "run", `${s.name} share of time`))))))]);
  };

  // --- jobs ----------------------------------------------------------------------------------

  function jobRow(job) {
    const paused = job.status !== "active";
    const action = paused ? "resume" : "pause";
    return el("li", { class: `job ${job.status}` },
      el("div", {}, el("strong", {}, job.name), " ", el("span", { class: `badge ${job.status === "failed" ? "status bad" : ""}` }, job.status)),
      el("div", { class: "muted" }, `${job.schedule} (${job.timezone})`,
        job.next_run && !paused ? ` · next ${P.when(job.next_run)}` : "",
        job.consecutive_failures ? ` · ${job.consecutive_failures} failed in a row` : ""),
      el("button", {
        type: "button", class: "secondary small",
        onclick: async () => {
          try {
            await P.post(`/api/v1/jobs/${encodeURIComponent(job.job_id)}/${action}`);
            await P.loadJobs();
          } catch (error) {
            P.toast(`Could not ${action}: ${error.message}`, "bad");
          }
        },
      }, paused ? "Resume" : "Pause"));
  }

  P.loadJobs = async function () {
    const box = $("jobs");
    let data;
    try {
      data = await P.get("/api/v1/jobs?limit=20");
    } catch (error) {
      if (!P.isMissingRoute(error)) return P.failed(box, error);
      return P.unavailable(box, "Scheduled jobs");
    }
    const jobs = data.jobs || [];
    P.append(P.clear(box), [jobs.length ? el("ul", { class: "jobs" }, jobs.map(jobRow)) : el("p", { class: "muted" }, "No scheduled jobs.")]);
  };

  // --- the assistant -------------------------------------------------------------------------

  let conversationId = null;

  function message(m) {
    return el("div", { class: `chat-message ${m.role}` }, el("span", { class: "chat-role" }, m.role === "user" ? "You" : "Planter"), el("p", {}, m.content));
  }

  P.bindChat = function () {
    $("chat-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("chat-input");
      const text = input.value.trim();
      if (!text) return;
      $("chat-error").textContent = "";
      const body = { message: text };
      if (conversationId) body.conversation_id = conversationId;
      input.disabled = true;
      try {
        const reply = await P.post("/api/v1/chat", body, { "Idempotency-Key": P.newKey() });
        conversationId = reply.conversation_id;
        for (const m of reply.messages || []) $("chat-log").appendChild(message(m));
        $("chat-log").scrollTop = $("chat-log").scrollHeight;
        input.value = "";
      } catch (error) {
        $("chat-error").textContent = P.isMissingRoute(error) ? "The assistant is not available on this server yet." : error.message;
      } finally {
        input.disabled = false;
        input.focus();
      }
    });
  };
})(window.Planter);
