// Shadow pairs: per route that mirrors (or still has pairs), its mirroring and its newest
// pairs, the primary's answer and the shadow's side by side, with both texts when the route
// stores them. Pairs are samples, not live figures: read at most every PAIRS_MS.

import { api, path } from "./api.js";
import { badge, h, ms, replace, table, unchanged, when } from "./dom.js";
import { mirroring } from "./routes.js";

const PAIRS_MS = 5000;
const SHOWN = 20;
const COLUMNS = ["Time", "Request id", "Versions", "Status", "Latency", "Finish", "Text chars"];

export class ShadowPanel {
  constructor(root) {
    this.root = root;
    this.open = new Set();
    this.pages = {};
    this.readAt = 0;
    this.read = "";
  }

  async refresh() {
    const doc = await api("/v1/routes");
    const mirrored = doc.routes.filter((r) => r.shadow).map((r) => r.name).join(" ");
    // Every route's pairs, every PAIRS_MS, or at once when a route starts mirroring.
    if (Date.now() - this.readAt >= PAIRS_MS || mirrored !== this.read) {
      const pages = await Promise.all(doc.routes.map((r) => api(`${path("/v1/routes", r.name, "shadow", "pairs")}?limit=${SHOWN}`)));
      this.pages = Object.fromEntries(pages.map((page) => [page.route, page]));
      this.readAt = Date.now();
      this.read = mirrored;
    }
    const shown = doc.routes.filter((r) => r.shadow || (this.pages[r.name] && this.pages[r.name].pairs.length));
    const data = shown.map((r) => [r, this.pages[r.name] || null]);
    if (unchanged(this.root, data)) return;
    replace(this.root, shown.length ? data.map(([route, page]) => this.card(route, page)) : h("p", { class: "muted" }, "No route mirrors its requests, and no pairs are kept."));
  }

  card(route, page) {
    const pairs = page ? page.pairs : [];
    return h(
      "section",
      { class: "card shadow", "data-shadow-route": route.name },
      h("h2", {}, "Route ", h("span", { class: "name" }, route.name)),
      h("p", { class: "mirroring" }, route.shadow ? mirroring(route) : "not mirroring now: these pairs were kept before"),
      pairs.length ? this.pairsTable(pairs) : h("p", { class: "muted empty" }, "no pairs kept yet"),
      page && page.unreadable ? h("p", { class: "warnings" }, `${page.unreadable} stored pairs could not be read (skipped)`) : null,
    );
  }

  pairsTable(pairs) {
    const rows = [];
    for (const pair of pairs) {
      const [p, s] = [pair.primary, pair.shadow];
      rows.push({
        attrs: { "data-pair": pair.id },
        cells: [
          when(pair.at),
          h("td", { class: "request-id" }, h("code", {}, pair.request_id)),
          h("td", { class: "versions" }, both(p.version, s.version)),
          h("td", { class: "status" }, both(outcome(p), outcome(s), p.error || s.error ? "bad" : null)),
          h("td", { class: "num latency" }, `${ms(p.latency_ms)} / ${ms(s.latency_ms)}`),
          h("td", { class: "finish" }, `${p.finish_reason || "–"} / ${s.finish_reason || "–"}`),
          h("td", { class: "num chars" }, `${chars(p)} / ${chars(s)}`),
        ],
      });
      if (pair.stored_text) rows.push({ attrs: { class: "pair-texts", "data-pair-texts": pair.id }, cells: [this.texts(pair)] });
    }
    return table("pairs", COLUMNS, rows, `newest ${pairs.length} pairs: primary / shadow`);
  }

  texts(pair) {
    const details = h(
      "details",
      { open: this.open.has(pair.id) },
      h("summary", {}, "Both answers' text"),
      h("div", { class: "side-by-side" }, side("Primary", pair.primary), side("Shadow", pair.shadow)),
    );
    details.addEventListener("toggle", () => (details.open ? this.open.add(pair.id) : this.open.delete(pair.id)));
    return h("td", { class: "texts", colspan: COLUMNS.length }, details);
  }
}

function both(primary, shadow, kind) {
  const text = `${primary} / ${shadow}`;
  return kind ? badge(text, kind) : text;
}

function outcome(side) {
  if (side.error) return side.status ? `${side.error} (${side.status})` : side.error;
  return side.status === null || side.status === undefined ? "–" : String(side.status);
}

function chars(side) {
  return `${side.text_chars}${side.text_truncated ? "+" : ""}`;
}

function side(label, answer) {
  return h(
    "figure",
    { class: `answer ${label.toLowerCase()}` },
    h("figcaption", {}, `${label}: ${answer.track} (${answer.version})`),
    h("pre", { class: "text" }, answer.text === null || answer.text === undefined ? "(no text)" : answer.text),
  );
}
