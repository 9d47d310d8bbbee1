// The dashboard's shell: sign-in, tabs, and the poll that keeps the open tab live (about
// once a second; the charts and the shadow pairs at their own pace). No EventSource: it
// cannot send the token.

import { api, signIn, signOut, token, Unauthorized } from "./api.js";
import { AuditPanel } from "./audit.js";
import { ChartPanel } from "./chart_panel.js";
import { setUpConfirm } from "./confirm.js";
import { badge, clock, replace } from "./dom.js";
import { FlagsPanel } from "./flags.js";
import { RolloutsPanel } from "./rollouts.js";
import { RoutesPanel } from "./routes.js";
import { ShadowPanel } from "./shadow.js";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

let panels = null;
let current = "routes";
let timer = null;
let polling = false;

function makePanels() {
  return {
    routes: new RoutesPanel($("panel-routes")),
    charts: new ChartPanel($("panel-charts")),
    rollouts: new RolloutsPanel($("panel-rollouts"), () => poll()),
    shadow: new ShadowPanel($("panel-shadow")),
    flags: new FlagsPanel($("panel-flags")),
    audit: new AuditPanel($("panel-audit")),
  };
}

function show(tab) {
  current = panels && panels[tab] ? tab : "routes";
  for (const button of document.querySelectorAll("#tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === current));
  }
  for (const name of ["routes", "charts", "rollouts", "shadow", "flags", "audit"]) {
    $(`panel-${name}`).hidden = name !== current;
  }
  poll();
}

async function poll() {
  clearTimeout(timer);
  if (!panels || polling) return;
  polling = true;
  try {
    await panels[current].refresh();
    replace($("live"), badge("live", "ok"), ` updated ${clock(Date.now() / 1000)}`);
  } catch (error) {
    if (error instanceof Unauthorized) {
      polling = false;
      return showSignIn("The admin token was refused: type it again.");
    }
    replace($("live"), badge("error", "bad"), ` ${error.message}`);
  }
  polling = false;
  timer = setTimeout(poll, POLL_MS);
}

function showSignIn(message) {
  signOut();
  clearTimeout(timer);
  panels = null;
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  replace($("sign-in-error"), message || "");
  $("token").value = "";
  $("token").focus();
}

function showApp() {
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  panels = makePanels();
  show(current);
}

async function trySignIn(event) {
  event.preventDefault();
  const typed = $("token").value.trim();
  if (!typed) return;
  signIn(typed);
  try {
    await api("/v1/routes");
  } catch (error) {
    if (error instanceof Unauthorized) return showSignIn("That token was refused.");
  }
  $("token").value = "";
  showApp();
}

function start() {
  setUpConfirm();
  $("sign-in-form").addEventListener("submit", trySignIn);
  $("sign-out").addEventListener("click", () => showSignIn("Signed out."));
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => show(button.dataset.tab));
  }
  if (token()) showApp();
  else showSignIn("");
}

start();
