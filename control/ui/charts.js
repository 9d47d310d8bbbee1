// Line charts drawn as SVG from numbers: no library, no canvas, every label a text node.

import { clock, h, s } from "./dom.js";

const W = 600;
const H = 190;
const PAD = { left: 52, right: 10, top: 10, bottom: 22 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function segments(values, x, y) {
  // A missing value (no requests in that bucket) breaks the line instead of drawing a zero.
  const out = [];
  let current = [];
  values.forEach((value, i) => {
    if (value === null || value === undefined) {
      if (current.length) out.push(current);
      current = [];
    } else {
      current.push(`${x(i).toFixed(1)},${y(value).toFixed(1)}`);
    }
  });
  if (current.length) out.push(current);
  return out;
}

/**
 * A chart: ``lines`` are {label, colour (0–7), values, dashed}, one value per ``times`` entry.
 * ``format`` writes an axis value.
 */
export function lineChart({ title, times, lines, format }) {
  const all = lines.flatMap((l) => l.values).filter((v) => v !== null && v !== undefined);
  const top = niceMax(Math.max(0, ...all));
  const n = Math.max(1, times.length - 1);
  const x = (i) => PAD.left + ((W - PAD.left - PAD.right) * i) / n;
  const y = (v) => H - PAD.bottom - ((H - PAD.top - PAD.bottom) * Math.min(v, top)) / top;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart" });
  for (const share of [0, 0.5, 1]) {
    const yy = y(top * share);
    svg.append(
      s("line", { x1: PAD.left, x2: W - PAD.right, y1: yy, y2: yy, class: "grid" }),
      s("text", { x: PAD.left - 6, y: yy + 4, class: "axis", "text-anchor": "end" }, format(top * share)),
    );
  }
  if (times.length) {
    for (const i of [0, Math.floor((times.length - 1) / 2), times.length - 1]) {
      const anchor = i === 0 ? "start" : i === times.length - 1 ? "end" : "middle";
      svg.append(s("text", { x: x(i), y: H - 6, class: "axis", "text-anchor": anchor }, clock(times[i])));
    }
  }
  for (const line of lines) {
    for (const points of segments(line.values, x, y)) {
      const cls = `series c${line.colour % 8}${line.dashed ? " dashed" : ""}`;
      if (points.length === 1) {
        const [px, py] = points[0].split(",");
        svg.append(s("circle", { cx: px, cy: py, r: 2.5, class: `dot c${line.colour % 8}` }));
      } else {
        svg.append(s("polyline", { points: points.join(" "), class: cls }));
      }
    }
  }
  const legend = h(
    "ul",
    { class: "legend" },
    lines.map((line) =>
      h(
        "li",
        {},
        h("span", { class: `swatch c${line.colour % 8}${line.dashed ? " dashed" : ""}` }),
        line.label,
        " ",
        h("span", { class: "latest" }, format(last(line.values))),
      ),
    ),
  );
  const empty = all.length ? null : h("p", { class: "muted" }, "no data in this window");
  return h("figure", { class: "card chart-card" }, h("figcaption", {}, title), svg, legend, empty);
}

function last(values) {
  for (let i = values.length - 1; i >= 0; i--) {
    if (values[i] !== null && values[i] !== undefined) return values[i];
  }
  return null;
}
