// Charts per version over the last 5 minutes, 1 hour or 6 hours, from the fleet's windows
// (GET /v1/routes/{route}/series).

import { api, path } from "./api.js";
import { h, ms, num, pct, replace, unchanged } from "./dom.js";
import { lineChart } from "./charts.js";

const WINDOWS = [
  ["5m", "5 min", 1000],
  ["1h", "1 hour", 10000],
  ["6h", "6 hours", 30000],
];
const CLASSES = ["connect", "timeout", "upstream_5xx", "upstream_429", "proxy_4xx", "cut", "truncated"];

const perSecond = (v) => (v === null || v === undefined ? "–" : `${num(v, v < 10 ? 2 : 0)}/s`);
const tokens = (v) => (v === null || v === undefined ? "–" : num(v, v < 10 ? 1 : 0));
const rating = (v) => (v === null || v === undefined ? "–" : `${num(v, 2)}/5`);

export class ChartPanel {
  constructor(root) {
    this.root = root;
    this.window = "5m";
    this.route = null;
    this.routes = [];
    this.lastFetch = 0;
    this.picker = h("select", { id: "chart-route", "aria-label": "Route" });
    this.picker.addEventListener("change", () => {
      this.route = this.picker.value;
      this.lastFetch = 0;
      this.refresh();
    });
    this.buttons = WINDOWS.map(([value, label]) => {
      const button = h("button", { type: "button", class: "toggle", "data-window": value }, label);
      button.addEventListener("click", () => {
        this.window = value;
        this.lastFetch = 0;
        this.refresh();
      });
      return button;
    });
    this.status = h("span", { class: "muted" });
    this.charts = h("div", { class: "charts" });
    replace(
      root,
      h("div", { class: "toolbar" }, h("label", {}, "Route ", this.picker), h("div", { class: "group" }, this.buttons), this.status),
      this.charts,
    );
  }

  async refresh() {
    const every = WINDOWS.find(([value]) => value === this.window)[2];
    if (Date.now() - this.lastFetch < every) return;
    this.lastFetch = Date.now();
    const routes = (await api("/v1/routes")).routes.map((r) => r.name);
    if (JSON.stringify(routes) !== JSON.stringify(this.routes)) {
      this.routes = routes;
      replace(this.picker, routes.map((name) => h("option", { value: name }, name)));
    }
    if (!routes.includes(this.route)) this.route = routes[0] || null;
    if (this.route) this.picker.value = this.route;
    for (const button of this.buttons) {
      button.setAttribute("aria-pressed", String(button.dataset.window === this.window));
    }
    if (!this.route) return replace(this.charts, h("p", {}, "No routes."));
    const data = await api(`${path("/v1/routes", this.route, "series")}?window=${this.window}`);
    replace(this.status, `one point per ${data.step_s} s`);
    if (unchanged(this.charts, data)) return;
    this.render(data);
  }

  render(data) {
    const versions = Object.keys(data.versions);
    if (!versions.length) {
      return replace(this.charts, h("p", { class: "muted" }, "No traffic on this route in this window."));
    }
    const label = (version) => {
      const tracks = data.tracks[version];
      return tracks ? `${version} (${tracks.join(", ")})` : version;
    };
    const lines = (key, dashed = false, suffix = "") =>
      versions.map((v, i) => ({ label: label(v) + suffix, colour: i, values: data.versions[v][key], dashed }));
    const byClass = versions.flatMap((v, i) =>
      CLASSES.filter((c) => data.versions[v].error_rate_by_class[c]).map((c, j) => ({
        label: `${label(v)} ${c}`,
        colour: i,
        dashed: j % 2 === 1,
        values: data.versions[v].error_rate_by_class[c],
      })),
    );
    const t = data.times;
    replace(
      this.charts,
      lineChart({ title: "Requests per second", times: t, lines: lines("requests_per_s"), format: perSecond }),
      lineChart({ title: "Error rate", times: t, lines: lines("error_rate"), format: (v) => pct(v) }),
      lineChart({ title: "Error rate by class", times: t, lines: byClass, format: (v) => pct(v) }),
      lineChart({
        title: "Latency p50 (dashed) and p95",
        times: t,
        lines: [...lines("latency_p95_ms", false, " p95"), ...lines("latency_p50_ms", true, " p50")],
        format: ms,
      }),
      lineChart({
        title: "Time to first token p50 (dashed) and p95",
        times: t,
        lines: [...lines("ttft_p95_ms", false, " p95"), ...lines("ttft_p50_ms", true, " p50")],
        format: ms,
      }),
      lineChart({ title: "Tokens per request", times: t, lines: lines("tokens_per_request"), format: tokens }),
      lineChart({ title: "Hallucination rate", times: t, lines: lines("hallucination_rate"), format: (v) => pct(v) }),
      lineChart({ title: "Satisfaction", times: t, lines: lines("user_satisfaction"), format: rating }),
    );
  }
}
