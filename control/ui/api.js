// The admin API, called with the token the operator typed in. The token lives in this tab's
// session storage only: never in a URL, never in a cookie, gone when the tab closes.

const TOKEN = "splitgate.token";
const ACTOR = "splitgate.actor";

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN);
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
}

export function actor() {
  return sessionStorage.getItem(ACTOR) || "";
}

export function rememberActor(name) {
  sessionStorage.setItem(ACTOR, name);
}

/** ``GET path`` (or ``method`` with a JSON ``body``) → the parsed answer; 401 → Unauthorized. */
export async function api(path, { method = "GET", body, actorName } = {}) {
  const headers = { Authorization: `Bearer ${token() || ""}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (actorName) headers["X-Splitgate-Actor"] = actorName;
  const answer = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
  });
  if (answer.status === 401) throw new Unauthorized("the admin token was refused");
  const data = await answer.json().catch(() => null);
  if (!answer.ok) {
    const message = data && data.error ? data.error.message : `HTTP ${answer.status}`;
    throw new ApiError(answer.status, message);
  }
  return data;
}

/** A path with its parts escaped: ``path("/v1/rollouts", id, "verdicts")``. */
export function path(...parts) {
  return parts.map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join("/");
}
