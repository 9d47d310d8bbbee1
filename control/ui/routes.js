// Routes: the live split per track, each track's version and upstream health (as the proxy
// replicas report it in their acks), the routing generation with the replicas that applied
// it, the sample-ratio status over the last 5 minutes, and the route's mirroring (shadow).

import { api, path } from "./api.js";
import { ago, badge, h, pct, replace, s, table, unchanged, weight } from "./dom.js";

export class RoutesPanel {
  constructor(root) {
    this.root = root;
  }

  async refresh() {
    const doc = await api("/v1/routes");
    const details = await Promise.all(doc.routes.map((r) => api(path("/v1/routes", r.name))));
    const data = { doc, ratios: details.map((d) => d.sample_ratio) };
    if (unchanged(this.root, data)) return;
    replace(this.root, generation(doc), doc.routes.map((route, i) => routeCard(route, data.ratios[i], doc)));
  }
}

function applies(ack, doc) {
  return ack.generation === doc.generation && (!ack.digest || ack.digest === doc.digest);
}

function generation(doc) {
  const replicas = Object.entries(doc.replicas);
  const applied = replicas.filter(([, ack]) => applies(ack, doc));
  const state = !replicas.length
    ? badge("no live replica", "warn")
    : doc.converged
      ? badge(`applied by all ${replicas.length}`, "ok")
      : badge(`applied by ${applied.length} of ${replicas.length}`, "warn");
  return h(
    "section",
    { class: "card", id: "generation" },
    h("h2", {}, "Routing generation ", h("span", { class: "generation" }, String(doc.generation)), " ", state),
    h("p", { class: "muted" }, `written by ${doc.written_by || "–"}, ${ago(doc.written_at)}`),
    table(
      "replicas",
      ["Replica", "Generation", "This document", "Last ack"],
      replicas.map(([name, ack]) => ({
        attrs: { "data-replica": name },
        cells: [
          name,
          h("td", { class: "num" }, String(ack.generation)),
          applies(ack, doc) ? badge("acked", "ok") : badge("behind", "warn"),
          ago(ack.applied_at),
        ],
      })),
    ),
  );
}

function splitBar(route) {
  const svg = s("svg", { viewBox: "0 0 1000 28", preserveAspectRatio: "none", class: "split", role: "img", "aria-label": `split of ${route.name}` });
  let x = 0;
  route.tracks.forEach((track, i) => {
    if (track.weight <= 0) return;
    const w = track.weight * 10;
    svg.append(s("rect", { x, y: 0, width: w, height: 28, class: `fill c${i % 8}` }, s("title", {}, `${track.name} ${weight(track.weight)}`)));
    x += w;
  });
  return svg;
}

function health(url, replicas) {
  const seen = replicas.filter(([, ack]) => ack.upstreams && ack.upstreams[url]);
  if (!seen.length) return badge("not reported", "idle");
  const ejected = seen.filter(([, ack]) => ack.upstreams[url].ejected).map(([name]) => name);
  if (ejected.length) return badge(`ejected by ${ejected.join(", ")}`, "bad");
  const failing = seen.filter(([, ack]) => ack.upstreams[url].failures > 0);
  if (failing.length) {
    const most = Math.max(...failing.map(([, ack]) => ack.upstreams[url].failures));
    return badge(`failing (${most} in a row)`, "warn");
  }
  return badge(`healthy (${seen.length} of ${replicas.length})`, "ok");
}

function ratioStatus(ratio) {
  if (!ratio) return badge("unknown", "idle");
  if (ratio.p_value === null) return badge(`too few requests (${ratio.requests})`, "idle");
  if (!ratio.judged) return badge("not judged: weights changed in the window", "idle");
  if (ratio.mismatch) return badge(`mismatch (p = ${ratio.p_value.toExponential(1)})`, "bad");
  return badge(`ok (p = ${ratio.p_value.toFixed(3)})`, "ok");
}

function routeCard(route, ratio, doc) {
  const replicas = Object.entries(doc.replicas);
  const observed = ratio ? ratio.observed_share : {};
  return h(
    "section",
    { class: "card route", "data-route": route.name },
    h("h2", {}, "Route ", h("span", { class: "name" }, route.name)),
    splitBar(route),
    h(
      "p",
      { class: "split-text" },
      route.tracks.map((track, i) =>
        h("span", { class: "split-item", "data-track": track.name }, h("span", { class: `swatch c${i % 8}` }), `${track.name} ${weight(track.weight)}`),
      ),
    ),
    table(
      "tracks",
      ["Track", "Version", "Weight", "Served (5 min)", "Upstreams"],
      route.tracks.map((track) => ({
        attrs: { "data-track": track.name },
        cells: [
          h("td", { class: "track" }, track.name),
          h("td", { class: "version" }, track.version),
          h("td", { class: "num weight" }, weight(track.weight)),
          h("td", { class: "num served" }, observed[track.name] === undefined ? "–" : pct(observed[track.name])),
          h("ul", { class: "upstreams" }, track.upstreams.map((url) => h("li", {}, h("code", {}, url), " ", health(url, replicas)))),
        ],
      })),
    ),
    h("p", {}, "Sample ratio (last 5 min): ", ratioStatus(ratio)),
    route.shadow ? h("p", { class: "mirroring" }, badge("shadow", "idle"), " ", mirroring(route)) : null,
  );
}

/** "mirroring 10 % of POST requests to canary (v2) · at most 16 in flight · pairs with text". */
export function mirroring(route) {
  const shadow = route.shadow;
  const track = route.tracks.find((t) => t.name === shadow.track);
  const parts = [
    `mirroring ${Number(Number(shadow.percent).toFixed(2))} % of POST requests to ${shadow.track}${track ? ` (${track.version})` : ""}`,
    `at most ${shadow.max_in_flight} in flight`,
    shadow.max_tokens_per_minute ? `at most ${shadow.max_tokens_per_minute} tokens a minute` : null,
    shadow.max_pairs === 0 ? "no pairs kept" : `pairs ${shadow.store_text ? "with text" : "without text"}`,
  ];
  return parts.filter(Boolean).join(" · ");
}
