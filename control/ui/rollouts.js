// Rollouts: the active ones (phase timeline, each look's verdicts with their figures, what
// each waits for, and the commands, each confirmed with a name and a reason), then the past
// ones with their history and, for an A/B test, its report.

import { api, path } from "./api.js";
import { confirmAction } from "./confirm.js";
import { ago, badge, duration, h, ms, num, replace, table, unchanged, weight, when } from "./dom.js";

const FINAL = new Set(["promoted", "rolled_back", "aborted", "completed"]);
const COMMANDS = [
  ["approve", "Approve", (st) => st === "awaiting_approval", "enters the phase that waits for approval"],
  ["promote", "Promote", (st) => st === "awaiting_promotion", "moves on to the next phase"],
  ["pause", "Pause", (st) => ["running", "awaiting_approval", "awaiting_promotion"].includes(st), "holds the rollout where it is"],
  ["resume", "Resume", (st) => st === "paused", "carries on; the phase's clock restarts"],
  ["abort", "Abort", (st) => !FINAL.has(st), "rolls back: the candidate gets 0 %"],
];
const KIND = { promoted: "ok", completed: "ok", running: "ok", rolled_back: "bad", aborted: "bad", paused: "warn", awaiting_approval: "warn", awaiting_promotion: "warn", pending: "idle" };
const VERDICT = { pass: "ok", fail: "bad", error: "bad", inconclusive: "idle" };

export class RolloutsPanel {
  constructor(root, onChange) {
    this.root = root;
    this.onChange = onChange;
    this.open = new Set();
    this.active = h("div", { id: "active-rollouts" });
    this.past = h("div", { id: "past-rollouts" });
    this.message = h("p", { class: "message", role: "status" });
    replace(root, this.message, h("h2", {}, "Active"), this.active, h("h2", {}, "Past"), this.past);
  }

  async refresh() {
    const page = await api("/v1/rollouts?limit=50");
    const live = page.rollouts.filter((r) => !FINAL.has(r.state.status));
    const views = await Promise.all(
      live.map(async (r) => ({
        view: await api(path("/v1/rollouts", r.id)),
        looks: (await api(`${path("/v1/rollouts", r.id, "verdicts")}?limit=5`)).looks,
      })),
    );
    if (!unchanged(this.active, views)) {
      replace(this.active, views.length ? views.map((v) => this.activeCard(v.view, v.looks)) : h("p", { class: "muted" }, "No active rollout."));
    }
    const done = page.rollouts.filter((r) => FINAL.has(r.state.status));
    if (!unchanged(this.past, [done, page.quarantined])) {
      replace(this.past, done.length ? done.map((r) => this.pastCard(r)) : h("p", { class: "muted" }, "None yet."), quarantined(page.quarantined));
    }
  }

  activeCard(r, looks) {
    const status = r.state.status;
    return h(
      "section",
      { class: "card rollout", "data-rollout": r.id, "data-status": status },
      h("h3", {}, h("span", { class: "name" }, r.id), " ", badge(status.replace(/_/g, " "), KIND[status] || "idle")),
      h("p", { class: "muted" }, `${r.strategy.replace(/_/g, " ")} of route ${r.route}, started by ${r.created_by} ${ago(r.created_at)}`),
      h("p", { class: "waiting" }, h("strong", {}, "Waiting for: "), r.waiting_for || "–"),
      h("p", {}, "Weights now: ", r.weights ? Object.entries(r.weights).map(([t, w]) => `${t} ${weight(w)}`).join(" · ") : "–", r.time_in_phase_s === null ? "" : ` · ${duration(r.time_in_phase_s)} in this phase`),
      timeline(r),
      h("div", { class: "actions" }, COMMANDS.map(([name, label, applies, what]) => this.button(r, name, label, applies(status), what))),
      looksTable(looks, this.open),
      history(r.state.history, "History"),
      r.warnings && r.warnings.length ? h("ul", { class: "warnings" }, r.warnings.map((w) => h("li", {}, w))) : null,
    );
  }

  button(r, name, label, enabled, what) {
    const button = h("button", { type: "button", class: name === "abort" ? "danger" : "", "data-command": name, disabled: !enabled }, label);
    button.addEventListener("click", async () => {
      const answer = await confirmAction(`${label} ${r.id}?`, `${label}: ${what}. Recorded with your name and reason.`);
      if (!answer) return;
      try {
        await api(path("/v1/rollouts", r.id, name), { method: "POST", body: { reason: answer.reason }, actorName: answer.actor });
        replace(this.message, badge("done", "ok"), ` ${label} ${r.id}`);
      } catch (error) {
        replace(this.message, badge("refused", "bad"), ` ${label} ${r.id}: ${error.message}`);
      }
      this.onChange();
    });
    return button;
  }

  pastCard(r) {
    const details = h(
      "details",
      { class: "card rollout past", "data-rollout": r.id, open: this.open.has(r.id) },
      h(
        "summary",
        {},
        h("span", { class: "name" }, r.id),
        " ",
        badge(r.state.status.replace(/_/g, " "), KIND[r.state.status] || "idle"),
        h("span", { class: "muted" }, ` ${r.strategy.replace(/_/g, " ")} · ${when(r.created_at)}`),
      ),
      h("p", { class: "muted" }, `route ${r.route}, started by ${r.created_by}`),
      timeline(r),
      r.report ? report(r.report) : null,
      r.post_deploy ? h("p", {}, "Post-deploy checks: ", badge(r.post_deploy.status, r.post_deploy.status === "passed" ? "ok" : r.post_deploy.status === "failed" ? "bad" : "idle")) : null,
      history(r.state.history, "History"),
    );
    details.addEventListener("toggle", () => (details.open ? this.open.add(r.id) : this.open.delete(r.id)));
    return details;
  }
}

function timeline(r) {
  const phases = r.plan.phases;
  if (!Array.isArray(phases)) {
    const split = r.plan.split ? Object.entries(r.plan.split).map(([t, w]) => `${t} ${weight(w)}`).join(" · ") : "";
    return h("p", { class: "timeline" }, `A/B split: ${split}`);
  }
  const status = r.state.status;
  return h(
    "ol",
    { class: "timeline" },
    phases.map((phase, i) => {
      let state = "upcoming";
      if (i < r.state.phase || status === "promoted" || status === "completed") state = "done";
      else if (i === r.state.phase) state = FINAL.has(status) ? "stopped" : "current";
      const shadow = phase.shadow ? `, shadow ${weight(phase.shadow.percent)}` : "";
      const extra = `${shadow}${phase.requires_approval ? " · needs approval" : ""}`;
      return h("li", { class: `phase ${state}`, "data-phase": i }, h("span", { class: "phase-name" }, phase.name), ` ${weight(phase.traffic)}${extra}`);
    }),
  );
}

function figure(value, unit) {
  // As the terminal's views write them (control/views.py): a rate is stored as a fraction.
  if (value === null || value === undefined) return "–";
  if (unit === "%") return `${num(value * 100, 2)} %`;
  if (unit === "ms") return ms(value);
  if (unit === "/5") return `${num(value, 2)}/5`;
  return `${num(value, 3)}${unit ? ` ${unit}` : ""}`;
}

function looksTable(looks, open) {
  if (!looks.length) return h("p", { class: "muted" }, "No look yet.");
  const [latest, ...earlier] = looks.map(lookTable);
  const more = h("details", { class: "earlier", open: open.has("looks") }, h("summary", {}, `${earlier.length} earlier looks`), earlier);
  more.addEventListener("toggle", () => (more.open ? open.add("looks") : open.delete("looks")));
  return h("div", { class: "looks" }, h("h4", {}, "Verdicts of the last look"), latest, earlier.length ? more : null);
}

function lookTable(look) {
  return table(
        "verdicts",
        ["Check", "Verdict", "Candidate", "Baseline", "Threshold", "Sample", "Still needed", "Why"],
        look.verdicts.map((v) => ({
          cells: [
            `${v.metric}${v.role === "rollback" ? " (rollback)" : ""}`,
            badge(v.verdict, VERDICT[v.verdict] || "idle"),
            // A comparison with the baseline carries its evidence (a likelihood ratio), not a rate.
            h("td", { class: "num" }, v.metric.endsWith("_vs_baseline") ? `evidence ${figure(v.value, "")}` : figure(v.value, v.unit)),
            h("td", { class: "num" }, figure(v.baseline, v.unit)),
            v.threshold || "–",
            h("td", { class: "num" }, String(v.sample)),
            h("td", { class: "num" }, v.needed === null ? "–" : `${v.needed}${v.eta_s ? ` (~${duration(v.eta_s)})` : ""}`),
            h("td", { class: "why" }, v.reason),
          ],
        })),
        `${when(look.at)}, phase ${look.phase + 1}`,
  );
}

function history(events, title) {
  return h(
    "div",
    { class: "history" },
    h("h4", {}, title),
    h("ol", {}, [...events].reverse().map((e) => h("li", {}, h("time", {}, when(e.at)), " ", h("strong", {}, e.kind), " ", e.detail))),
  );
}

function report(rep) {
  const keys = [...new Set(rep.comparisons.flatMap((c) => Object.keys(c)))].filter((k) => typeof rep.comparisons[0][k] !== "object");
  return h(
    "div",
    { class: "report" },
    h("h4", {}, `A/B report: ${rep.a} vs ${rep.b} (${rep.ended})`),
    h("ul", {}, rep.summary.map((line) => h("li", {}, line))),
    h("p", { class: "muted" }, `served: ${Object.entries(rep.served).map(([t, n]) => `${t} ${n}`).join(" · ")}; confidence ${rep.confidence}${rep.holm ? ", Holm-adjusted" : ""}`),
    table(
      "report",
      keys,
      rep.comparisons.map((c) => ({ cells: keys.map((k) => (typeof c[k] === "number" ? num(c[k], 4) : String(c[k] ?? "–"))) })),
    ),
  );
}

function quarantined(items) {
  if (!items.length) return null;
  return h("div", { class: "card" }, h("h3", {}, "Quarantined records"), h("ul", {}, items.map((q) => h("li", {}, `${q.id}: ${q.reason}`))));
}
