// Planter's dashboard: the API client, the session's token and small DOM helpers.
// Every piece of data reaches the page through text nodes (el(), textContent), never parsed as HTML.
"use strict";

window.Planter = window.Planter || {};

(function (P) {
  const SESSION_KEY = "planter.token"; // the sessionStorage entry holding the bearer token

  // The token lives in sessionStorage: this tab only, gone when it closes.
  P.session = {
    token() { return sessionStorage.getItem(SESSION_KEY); },
    set(token) { sessionStorage.setItem(SESSION_KEY, token.trim()); },
    clear() { sessionStorage.removeItem(SESSION_KEY); },
  };

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }
  P.ApiError = ApiError;

  // One call to the API: JSON in and out; problem+json becomes an ApiError; 401 signs out.
  P.request = async function (method, path, body, extraHeaders) {
    const headers = Object.assign({ Accept: "application/json" }, extraHeaders || {});
    const token = P.session.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && P.onUnauthorized) P.onUnauthorized(error);
      throw error;
    }
    return data;
  };
  P.get = (path) => P.request("GET", path);
  P.post = (path, body, headers) => P.request("POST", path, body === undefined ? {} : body, headers);

  // A route another part of Planter has not shipped yet answers 404 (or 405): the panel says so.
  P.isMissingRoute = (error) => error instanceof ApiError && (error.status === 404 || error.status === 405);

  P.newKey = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());

  // el("div", {class: "x", onclick: f}, "text", child...): strings become text nodes.
  P.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    P.append(node, children);
    return node;
  };
  P.append = function (node, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  };
  P.clear = function (node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  };
  P.$ = (id) => document.getElementById(id);

  // "Not available" for a panel whose route this server does not have yet.
  P.unavailable = (container, what) =>
    P.append(P.clear(container), [P.el("p", { class: "muted unavailable" }, `${what} is not available on this server yet.`)]);
  P.failed = (container, error) =>
    P.append(P.clear(container), [P.el("p", { class: "error" }, `Could not load: ${error.message}`)]);

  P.toast = function (message, kind) {
    const node = P.$("toast");
    node.textContent = message;
    node.className = `toast ${kind || ""}`;
    node.hidden = false;
    clearTimeout(P.toast.timer);
    P.toast.timer = setTimeout(() => { node.hidden = true; }, 4000);
  };

  const DATE = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  P.when = (iso) => (iso ? DATE.format(new Date(iso)) : "");
  P.duration = function (fromIso, toIso) {
    if (!fromIso) return "";
    const seconds = Math.max(0, ((toIso ? new Date(toIso) : new Date()) - new Date(fromIso)) / 1000);
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
    return `${(seconds / 3600).toFixed(1)} h`;
  };
  P.zone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
})(window.Planter);
