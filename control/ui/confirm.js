// The confirmation every action asks for: what it does, the operator's name and a reason,
// in a modal of our own (no window.confirm, no inline handlers).

import { actor, rememberActor } from "./api.js";
import { replace } from "./dom.js";

const dialog = () => document.getElementById("confirm");
let pending = null;

/** Resolves to {actor, reason} once confirmed, or null when cancelled. */
export function confirmAction(title, text) {
  const d = dialog();
  replace(document.getElementById("confirm-title"), title);
  replace(document.getElementById("confirm-text"), text);
  replace(document.getElementById("confirm-error"));
  document.getElementById("confirm-actor").value = actor();
  document.getElementById("confirm-reason").value = "";
  if (pending) pending(null);
  d.showModal();
  (actor() ? document.getElementById("confirm-reason") : document.getElementById("confirm-actor")).focus();
  return new Promise((resolve) => {
    pending = resolve;
  });
}

function settle(value) {
  const resolve = pending;
  pending = null;
  dialog().close();
  if (resolve) resolve(value);
}

export function setUpConfirm() {
  const form = document.getElementById("confirm-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = document.getElementById("confirm-actor").value.trim();
    const reason = document.getElementById("confirm-reason").value.trim();
    if (!name || !reason) {
      replace(document.getElementById("confirm-error"), "Give your name and a reason.");
      return;
    }
    rememberActor(name);
    settle({ actor: name, reason });
  });
  document.getElementById("confirm-cancel").addEventListener("click", () => settle(null));
  dialog().addEventListener("cancel", () => settle(null));
}
