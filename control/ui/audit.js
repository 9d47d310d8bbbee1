// The audit log: who changed the routing document, when, from what to what, and why.

import { api } from "./api.js";
import { h, replace, table, unchanged, weight, when } from "./dom.js";

function brief(value) {
  if (value === null || value === undefined) return "–";
  const text = JSON.stringify(value);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

/** What changed: a route's tracks as "stable 90% → 75%", anything else as brief JSON. */
function change(before, after) {
  const tracks = (part) => (part && Array.isArray(part.tracks) ? Object.fromEntries(part.tracks.map((t) => [t.name, t])) : null);
  if (after && Array.isArray(after.routes)) return `the whole document: routes ${after.routes.map((r) => r.name).join(", ")}`;
  const was = tracks(before);
  const now = tracks(after);
  if (!was && !now) return `${brief(before)} → ${brief(after)}`;
  const lines = [];
  for (const name of new Set([...Object.keys(was || {}), ...Object.keys(now || {})])) {
    const a = was && was[name];
    const b = now && now[name];
    if (!a) lines.push(`${name} added: ${b.version} ${weight(b.weight)}`);
    else if (!b) lines.push(`${name} removed`);
    else {
      if (a.weight !== b.weight) lines.push(`${name} ${weight(a.weight)} → ${weight(b.weight)}`);
      if (a.version !== b.version) lines.push(`${name} ${a.version} → ${b.version}`);
      if (JSON.stringify(a.upstreams) !== JSON.stringify(b.upstreams)) lines.push(`${name} upstreams ${b.upstreams.join(", ")}`);
    }
  }
  return lines.length ? lines.join("; ") : "no change to the tracks";
}

export class AuditPanel {
  constructor(root) {
    this.root = root;
  }

  async refresh() {
    const { records } = await api("/v1/audit?limit=100");
    if (unchanged(this.root, records)) return;
    replace(
      this.root,
      h(
        "div",
        { class: "card" },
        table(
          "audit",
          ["Time", "Actor", "Action", "Target", "Reason", "Generation", "Change"],
          records.map((r) => ({
            attrs: { "data-audit": r.id },
            cells: [
              when(r.time),
              h("td", { class: "actor" }, r.actor),
              r.action,
              r.target,
              h("td", { class: "reason" }, r.reason || "–"),
              h("td", { class: "num" }, String(r.generation)),
              h("td", { class: "change" }, change(r.before, r.after)),
            ],
          })),
        ),
      ),
    );
  }
}
