// Feature flags: each flag's audience, its schedule's progress, and a form that explains
// which track a request would get and why (POST /v1/flags/explain).

import { api, path } from "./api.js";
import { badge, h, replace, unchanged, weight, when } from "./dom.js";

export class FlagsPanel {
  constructor(root) {
    this.root = root;
    this.list = h("div", { id: "flag-list" });
    this.routeField = h("select", { id: "explain-route", required: true });
    this.userField = h("input", { id: "explain-user", type: "text", autocomplete: "off", placeholder: "alice" });
    this.attributesField = h("textarea", { id: "explain-attributes", rows: 3, placeholder: "region=jp\nplan=pro" });
    this.answer = h("div", { id: "explain-answer", role: "status" });
    const form = h(
      "form",
      { id: "explain-form", class: "card" },
      h("h2", {}, "Explain a request"),
      h("label", {}, "Route ", this.routeField),
      h("label", {}, "User id (the sticky key) ", this.userField),
      h("label", {}, "Attributes, one name=value a line ", this.attributesField),
      h("button", { type: "submit" }, "Explain"),
      this.answer,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.explain();
    });
    replace(root, this.list, form);
  }

  async refresh() {
    const [flags, routes] = await Promise.all([api("/v1/flags"), api("/v1/routes")]);
    const names = routes.routes.map((r) => r.name);
    if (!unchanged(this.routeField, names)) {
      const chosen = this.routeField.value;
      replace(this.routeField, names.map((n) => h("option", { value: n }, n)));
      if (names.includes(chosen)) this.routeField.value = chosen;
    }
    const scheduled = Object.entries(flags.flags).filter(([, f]) => f.gradual_rollout);
    const schedules = Object.fromEntries(
      await Promise.all(scheduled.map(async ([name]) => [name, await api(path("/v1/flags", name, "schedule")).catch(() => null)])),
    );
    const data = { flags: flags.flags, schedules };
    if (unchanged(this.list, data)) return;
    const entries = Object.entries(flags.flags);
    replace(this.list, entries.length ? entries.map(([name, flag]) => flagCard(name, flag, schedules[name])) : h("p", { class: "muted" }, "No feature flags."));
  }

  async explain() {
    const attributes = {};
    for (const line of this.attributesField.value.split("\n")) {
      const at = line.indexOf("=");
      if (at > 0) attributes[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    const body = { route: this.routeField.value, attributes };
    if (this.userField.value.trim()) body.user_id = this.userField.value.trim();
    try {
      const e = await api("/v1/flags/explain", { method: "POST", body });
      replace(
        this.answer,
        h("p", {}, "Track: ", h("strong", { class: "explained-track" }, e.track ?? "drawn at random"), e.flag ? ` (released by flag ${e.flag})` : ""),
        h("p", {}, `Rule: ${e.rule}. ${e.reason}`),
        h("ul", {}, e.flags.map((step) => h("li", {}, h("strong", {}, step.flag), ` ${step.outcome}: ${step.reason}`))),
      );
    } catch (error) {
      replace(this.answer, badge("refused", "bad"), ` ${error.message}`);
    }
  }
}

function audience(flag) {
  const parts = [];
  if (flag.target_groups.length) parts.push(`segments: ${flag.target_groups.join(", ")}`);
  for (const c of flag.conditions) {
    const values = c.values ? c.values.join(", ") : String(c.value);
    parts.push(`${c.attribute} ${c.operator} ${values}`);
  }
  if (flag.override.enabled_for.length) parts.push(`on for ${flag.override.enabled_for.length} listed users`);
  if (flag.override.disabled_for.length) parts.push(`off for ${flag.override.disabled_for.length} listed users`);
  return parts;
}

function flagCard(name, flag, schedule) {
  return h(
    "section",
    { class: "card flag", "data-flag": name },
    h("h3", {}, h("span", { class: "name" }, name), " ", flag.enabled ? badge("on", "ok") : badge("off", "idle")),
    flag.description ? h("p", { class: "muted" }, flag.description) : null,
    h("p", {}, `Releases track ${flag.track} of route ${flag.route} to ${weight(flag.rollout_percentage)} of:`),
    h("ul", {}, audience(flag).map((part) => h("li", {}, part))),
    schedule ? progress(schedule) : null,
  );
}

function progress(schedule) {
  const steps = schedule.steps || [];
  const total = steps.length;
  return h(
    "div",
    { class: "schedule" },
    h("p", {}, `Schedule: ${schedule.applied} of ${total} steps applied`, schedule.paused ? " " : "", schedule.paused ? badge("paused", "warn") : null),
    h("progress", { max: total || 1, value: schedule.applied }),
    h(
      "ol",
      {},
      steps.map((step) =>
        h("li", {}, `${step.due_at} → ${weight(step.percentage)}${step.target ? ` of ${step.target}` : ""} `, badge(step.state, step.state === "applied" ? "ok" : step.state === "due" ? "warn" : "idle"), step.applied_at ? ` ${when(step.applied_at)}` : ""),
      ),
    ),
    schedule.last ? h("p", { class: "muted" }, `Last: ${schedule.last.outcome}, ${schedule.last.detail || ""}`) : null,
  );
}
