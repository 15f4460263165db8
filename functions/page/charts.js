// Time-series charts drawn as inline SVG with DOM calls (no chart library, nothing fetched).
"use strict";

(function (P) {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 320, H = 130, LEFT = 34, RIGHT = 8, TOP = 10, BOTTOM = 22;

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  // A round upper bound for the y axis: 1, 2, 5 x 10^n.
  function niceMax(value) {
    if (value <= 0) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function label(iso, period) {
    const d = new Date(iso);
    if (period === "hourly") return `${String(d.getHours()).padStart(2, "0")}:00`;
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }

  // kind: "bar" or "line"; unit "%" scales 0-100.
  P.chart = function (points, { kind, color, period, unit, title }) {
    const values = points.map((p) => Number(p.value) || 0);
    const max = unit === "%" ? 100 : niceMax(Math.max(...values, 0));
    const plotW = W - LEFT - RIGHT, plotH = H - TOP - BOTTOM;
    const x = (i) => LEFT + (points.length <= 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
    const y = (v) => TOP + plotH - (v / max) * plotH;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
    root.appendChild(svg("title", {}, title));
    for (const fraction of [0, 0.5, 1]) {
      const gy = TOP + plotH - fraction * plotH;
      root.appendChild(svg("line", { x1: LEFT, x2: W - RIGHT, y1: gy, y2: gy, class: "grid" }));
      const tick = max * fraction;
      root.appendChild(svg("text", { x: LEFT - 4, y: gy + 3, class: "axis", "text-anchor": "end" },
        `${Number.isInteger(tick) ? tick : tick.toFixed(1)}${unit === "%" ? "%" : ""}`));
    }
    if (kind === "bar") {
      const slot = plotW / Math.max(points.length, 1);
      const width = Math.max(1, slot * 0.7);
      points.forEach((p, i) => {
        const v = values[i];
        const top = y(v);
        root.appendChild(svg("rect", {
          x: LEFT + i * slot + (slot - width) / 2, y: top, width, height: Math.max(0, TOP + plotH - top),
          rx: Math.min(2, width / 2), fill: color, class: "bar-rect",
        }, svg("title", {}, `${label(p.timestamp, period)}: ${v}${unit === "%" ? "%" : ""}`)));
      });
    } else {
      const line = values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      const area = `${line} L${x(values.length - 1).toFixed(1)},${TOP + plotH} L${x(0).toFixed(1)},${TOP + plotH} Z`;
      root.appendChild(svg("path", { d: area, fill: color, "fill-opacity": 0.12, stroke: "none" }));
      root.appendChild(svg("path", { d: line, fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round" }));
      points.forEach((p, i) => root.appendChild(svg("circle", { cx: x(i), cy: y(values[i]), r: 2.5, fill: color },
        svg("title", {}, `${label(p.timestamp, period)}: ${values[i].toFixed(1)}${unit === "%" ? "%" : ""}`))));
    }
    if (points.length) {
      const first = points[0], last = points[points.length - 1];
      root.appendChild(svg("text", { x: LEFT, y: H - 6, class: "axis", "text-anchor": "start" }, label(first.timestamp, period)));
      root.appendChild(svg("text", { x: W - RIGHT, y: H - 6, class: "axis", "text-anchor": "end" }, label(last.timestamp, period)));
    }
    return root;
  };

  const SERIES = [
    { metric: "tasks_created", title: "Tasks created", kind: "bar", color: "#3b6fd8", summary: "sum" },
    { metric: "tasks_completed", title: "Completed", kind: "bar", color: "#1f9d55", summary: "sum" },
    { metric: "tasks_failed", title: "Failed", kind: "bar", color: "#d64545", summary: "sum" },
    { metric: "success_rate", title: "Success rate", kind: "line", color: "#1f9d55", summary: "last" },
    { metric: "avg_duration_minutes", title: "Average duration (min)", kind: "line", color: "#8a5cd6", summary: "last" },
    { metric: "ai_operations", title: "AI operations", kind: "bar", color: "#d68a1f", summary: "sum" },
  ];

  P.loadCharts = async function () {
    const [period, days] = P.$("charts-range").value.split(":");
    const container = P.$("charts");
    const results = await Promise.all(SERIES.map((s) => {
      const params = new URLSearchParams({ metric: s.metric, period, days, tz: P.zone() });
      return P.get(`/api/v1/dashboard/time-series?${params}`).then((d) => ({ s, d }), (e) => ({ s, e }));
    }));
    P.clear(container);
    for (const { s, d, e } of results) {
      if (e) {
        container.appendChild(P.el("figure", { class: "chart-box" }, P.el("figcaption", {}, s.title), P.el("p", { class: "error" }, e.message)));
        continue;
      }
      const points = d.data_points || [];
      const unit = d.unit === "percent" || s.metric === "success_rate" ? "%" : "";
      const values = points.map((p) => Number(p.value) || 0);
      const figure = s.summary === "sum" ? values.reduce((a, b) => a + b, 0)
        : (values.filter((v) => v > 0).pop() || 0).toFixed(1) + unit;
      container.appendChild(P.el("figure", { class: "chart-box", dataset: { metric: s.metric } },
        P.el("figcaption", {}, s.title, P.el("span", { class: "chart-figure" }, String(figure))),
        P.chart(points, { kind: s.kind, color: s.color, period, unit, title: s.title })));
    }
  };
})(window.Planter);
