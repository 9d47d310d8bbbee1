// Building the page from data: every string goes in as text (textContent or a text node),
// never as HTML, so a name from the routing document cannot become markup.

const SVG = "http://www.w3.org/2000/svg";

function build(node, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.toLowerCase().startsWith("on")) throw new Error(`no inline handlers (${key})`);
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.setAttribute("class", value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** h("td", {class: "num"}, "12 %") → <td class="num">12 %</td>; children are nodes or text. */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

export function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function pct(share, digits = 1) {
  return share === null || share === undefined ? "–" : `${(share * 100).toFixed(digits)} %`;
}

export function weight(value) {
  return `${Number(Number(value).toFixed(2))}%`;
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
}

export function num(value, digits = 2) {
  if (value === null || value === undefined) return "–";
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

export function clock(unixSeconds) {
  if (!unixSeconds) return "–";
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function when(unixSeconds) {
  if (!unixSeconds) return "–";
  const d = new Date(unixSeconds * 1000);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}`;
}

export function ago(unixSeconds) {
  if (!unixSeconds) return "–";
  const s = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** A badge: a short status word, its class naming its colour (ok, warn, bad, idle). */
export function badge(text, kind) {
  return h("span", { class: `badge ${kind}` }, text);
}

/** Re-render only when the data changed, keeping what the user opened or typed meanwhile. */
const rendered = new WeakMap();

export function unchanged(node, data) {
  const key = JSON.stringify(data);
  if (rendered.get(node) === key) return true;
  rendered.set(node, key);
  return false;
}

/** Forget what ``node`` showed, so the next ``unchanged`` renders it again. */
export function forget(node) {
  rendered.delete(node);
}

/**
 * A table whose cells name their column (``data-label``), so a phone shows each row as a
 * card. ``rows`` are {attrs, cells}; a cell is a node, text, or a <td> already made.
 */
export function table(cls, headers, rows, caption) {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { class: `stack ${cls}` },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        rows.map(({ attrs, cells }) =>
          h(
            "tr",
            attrs || {},
            cells.map((cell, i) => {
              const td = cell instanceof HTMLTableCellElement ? cell : h("td", {}, cell);
              td.setAttribute("data-label", headers[i]);
              return td;
            }),
          ),
        ),
      ),
    ),
  );
}
