// Shared by the board view, the widget and the settings view.
// Talks to monday only through monday-sdk-js (loaded before this module as window.mondaySdk)
// and to our server only with a fresh session token per request.

// The scroll helper injects an inline <style>, which our CSP refuses; we don't need it.
export const monday = window.mondaySdk({ withoutScrollHelper: true });

export const SDK_TIMEOUT_MS = 10000;
const RELAY_TIMEOUT_MS = 60000;

/** Reject if the host never answers (the SDK's promises otherwise stay pending forever). */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ApiError(0, "HOST_TIMEOUT", `monday did not answer (${what}).`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** A fresh session token from monday, asked for right before each call. */
export async function sessionToken() {
  const answer = await withTimeout(monday.get("sessionToken"), SDK_TIMEOUT_MS, "session token");
  const token = answer && answer.data;
  if (typeof token !== "string" || !token) {
    throw new ApiError(0, "NO_SESSION", "monday did not give us a session.");
  }
  return token;
}

/**
 * Call our API with a fresh session token; on 401 fetch another token and retry once.
 * Resolves with the parsed JSON body (null for 204), rejects with ApiError.
 */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const token = await sessionToken();
    const sent = { ...headers, Authorization: token };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (_) {
      throw new ApiError(0, "NETWORK", "We couldn't reach the server.");
    }
    if (response.status === 401 && attempt === 0) continue;
    if (response.status === 204) return null;
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (!response.ok) {
      const first = payload && Array.isArray(payload.errors) ? payload.errors[0] : null;
      const code = (first && first.extensions && first.extensions.code) || `HTTP_${response.status}`;
      const message = (first && first.message) || response.statusText || "The request failed.";
      throw new ApiError(response.status, code, message, payload);
    }
    return payload;
  }
}

const FRIENDLY = {
  FORBIDDEN: "You don't have permission to do that here.",
  VIEW_ONLY: "You have view-only access, so you can't send notifications. Ask a board owner for edit access.",
  APP_NOT_INSTALLED: "The app isn't installed on this account any more. Ask an account admin to reinstall it.",
  SENDER_NOT_ALLOWED: "Your account's settings don't allow sending as that sender. Pick another sender.",
  NO_CREDENTIAL: "Nothing is connected to send notifications yet. An admin can connect the app or the installer's API key in the app's settings.",
  API_KEY_REJECTED: "monday didn't accept that API key. It must be the personal API key of the user who installed the app, on this account.",
  IDEMPOTENCY_KEY_REUSED: "That request was already sent with different content. Try again.",
  PAYLOAD_TOO_LARGE: "That message is too long.",
  NETWORK: "We couldn't reach the server. Check your connection and try again.",
  HOST_TIMEOUT: "monday didn't answer in time. Reload the page and try again.",
  NO_SESSION: "monday didn't give us a session. Reload the page and try again.",
};

/** Words a user understands for an error (never a stack trace or a code alone). */
export function friendlyMessage(error, { viewOnly = false } = {}) {
  if (!(error instanceof ApiError)) return "Something went wrong. Try again in a moment.";
  if (error.code === "FORBIDDEN" && viewOnly) return FRIENDLY.VIEW_ONLY;
  if (error.code.startsWith("TOKEN_")) {
    return "monday couldn't confirm who you are. Reload the page and try again.";
  }
  if (error.code === "INVALID_PAYLOAD") return `Please check the form: ${error.message}`;
  if (error.code === "NO_CREDENTIAL" && error.message) return `${FRIENDLY.NO_CREDENTIAL} (${error.message})`;
  if (FRIENDLY[error.code]) return FRIENDLY[error.code];
  if (error.status === 429) return "Too many requests right now. Wait a moment and try again.";
  if (error.status >= 500) return "The server had a problem. Try again in a moment.";
  return error.message || "Something went wrong. Try again in a moment.";
}

/** Show a monday notice (the host renders it). */
export function notice(message, type = "info") {
  return withTimeout(
    monday.execute("notice", { message, type, timeout: 8000 }),
    SDK_TIMEOUT_MS,
    "notice",
  ).catch(() => undefined);
}

export function showError(error, options) {
  const message = friendlyMessage(error, options);
  // A host that never answers cannot show a notice either: say it on the page too.
  if (error instanceof ApiError && error.code === "HOST_TIMEOUT") banner(message);
  return notice(message, "error");
}

export const OUTSIDE_MONDAY =
  "This page runs inside monday (a board view, a dashboard widget or the app's settings), " +
  "or in development inside the local monday at /dev. Opened on its own it has no monday to talk to.";

/**
 * Opened outside monday (nothing frames the page), every SDK call would wait forever: replace
 * the page's content with what to do instead, and tell the caller to stop. Returns true then.
 */
export function outsideMonday() {
  if (window.parent !== window) return false;
  const note = element("p", "banner outside-monday", OUTSIDE_MONDAY);
  note.setAttribute("role", "alert");
  note.id = "outside-monday";
  (document.querySelector("main") || document.body).replaceChildren(note);
  document.body.dataset.ready = "outside-monday";
  return true;
}

const THEMES = ["light", "dark", "black"];

/** Apply monday's theme (light, dark, black) as Vibe's theme class on <body>. */
export function applyTheme(theme) {
  const chosen = THEMES.includes(theme) ? theme : "light";
  for (const name of THEMES) document.body.classList.remove(`${name}-app-theme`);
  document.body.classList.add(`${chosen}-app-theme`);
  document.body.dataset.theme = chosen;
}

/** The context now, and every later change: the theme is applied on each. */
export async function watchContext(onChange) {
  let last = null;
  const handle = (message) => {
    const context = message && message.data;
    if (!context || typeof context !== "object") return;
    last = context;
    applyTheme(context.theme);
    onChange(context);
  };
  monday.listen("context", handle);
  const answer = await withTimeout(monday.get("context"), SDK_TIMEOUT_MS, "context");
  if (last === null) handle(answer);
  return last;
}

/** The widget's or view's settings from monday (may be empty). */
export async function getSettings() {
  try {
    const answer = await withTimeout(monday.get("settings"), SDK_TIMEOUT_MS, "settings");
    return (answer && answer.data) || {};
  } catch (_) {
    return {};
  }
}

/** Unique per click intent; the same key is reused for the 401 retry of that intent. */
export function newIdempotencyKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Run a seamless send through monday (contract §5/§6) and report the outcome.
 * Resolves with the ledger object after the report.
 */
export async function relayIfNeeded(item) {
  if (!item || item.delivery_status !== "awaiting_client" || !item.relay) return item;
  let outcome;
  try {
    const result = await withTimeout(
      monday.api(item.relay.query, { variables: item.relay.variables }),
      RELAY_TIMEOUT_MS,
      "api",
    );
    const errors = result && Array.isArray(result.errors) ? result.errors : [];
    if (errors.length) {
      const first = errors[0] || {};
      outcome = {
        ok: false,
        error: {
          message: String(first.message || "monday refused the notification"),
          code: (first.extensions && first.extensions.code) || null,
        },
      };
    } else {
      outcome = { ok: true };
    }
  } catch (error) {
    const data = error && error.data;
    const first = data && Array.isArray(data.errors) ? data.errors[0] : null;
    outcome = {
      ok: false,
      error: {
        message: String((first && first.message) || (error && error.message) || "monday did not run the request"),
        code: (first && first.extensions && first.extensions.code) || null,
      },
    };
  }
  const reported = await api(`/notifications/${encodeURIComponent(item.id)}/relay`, {
    method: "POST",
    body: outcome,
  });
  return (reported && reported.data) || { ...item, delivery_status: outcome.ok ? "sent" : "failed" };
}

/** POST /notifications (one object) as a relay-capable view; runs the relay if asked. */
export async function sendNotification(payload, idempotencyKey) {
  const answer = await api("/notifications", {
    method: "POST",
    body: payload,
    headers: { "X-Relay-Capable": "1", "Idempotency-Key": idempotencyKey },
  });
  const item = answer && answer.data;
  return relayIfNeeded(Array.isArray(item) ? item[0] : item);
}

/** Query string in Directus' language: filter/aggregate objects become JSON or bracket keys. */
export function ledgerQuery(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    if (key === "aggregate") {
      for (const [fn, field] of Object.entries(value)) search.append(`aggregate[${fn}]`, field);
    } else if (typeof value === "object") {
      search.append(key, JSON.stringify(value));
    } else {
      search.append(key, String(value));
    }
  }
  return `/notifications?${search.toString()}`;
}

const STATUS_WORDS = {
  queued: "Queued",
  sending: "Sending",
  sent: "Sent",
  retry_scheduled: "Retrying soon",
  awaiting_client: "Waiting for monday",
  failed: "Failed",
  unknown: "Unknown – may have been sent",
  scheduled: "Scheduled",
  cancelled: "Cancelled",
  suppressed: "Muted – not sent",
};

export function statusWords(status) {
  return STATUS_WORDS[status] || String(status || "");
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export { element };

export function when(timestamp) {
  if (timestamp === null || timestamp === undefined || timestamp === "") return "";
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

/**
 * When a scheduled row goes out, in the reader's own time (contract §12): its `send_at`, or
 * the end of quiet hours / the digest window holding it (`next_attempt_at`). Empty otherwise.
 */
export function scheduleLine(row) {
  const status = row.delivery_status;
  if (status === "scheduled") {
    if (row.deferred_reason === "quiet_hours") return `Held for quiet hours until ${when(row.next_attempt_at)}`;
    if (row.digest_id) return `Waiting for a digest, goes out ${when(row.next_attempt_at)}`;
    return `Scheduled for ${when(row.send_at || row.next_attempt_at)}`;
  }
  if (status === "cancelled" && row.send_at) return `Cancelled; was scheduled for ${when(row.send_at)}`;
  if (row.send_at) return `Scheduled for ${when(row.send_at)}`;
  return "";
}

/**
 * A ledger row as a list item. Only textContent is used: user text is never parsed as HTML.
 */
export function notificationItem(row, nameOf) {
  const li = element("li", "history-item");
  li.dataset.id = String(row.id);
  li.dataset.status = String(row.delivery_status || "");
  const top = element("div", "history-top");
  top.append(element("span", "history-to", `To ${nameOf(row.recipient)}`));
  top.append(element("span", `chip chip-${row.delivery_status || "none"}`, statusWords(row.delivery_status)));
  li.append(top);
  li.append(element("p", "history-message", String(row.message ?? "")));
  const sender = row.sent_as === "installer" ? `as ${nameOf(row.credential_owner)}` : row.sent_as === "app" ? "as the app" : "";
  const meta = [when(row.timestamp), `from ${nameOf(row.sender)}`, sender].filter(Boolean).join(" · ");
  li.append(element("p", "history-meta muted", meta));
  const scheduled = scheduleLine(row);
  if (scheduled) li.append(element("p", "history-schedule muted", scheduled));
  if (row.last_error && row.last_error.message) {
    li.append(element("p", "history-error", String(row.last_error.message)));
  }
  return li;
}

/**
 * Replace a list's children with rendered rows; toggle its empty-state paragraph.
 * `decorate(row, li)`, if given, may add controls to each item (the board's "Cancel").
 */
export function renderList(list, empty, rows, nameOf, decorate) {
  list.replaceChildren(
    ...rows.map((row) => {
      const li = notificationItem(row, nameOf);
      if (decorate) decorate(row, li);
      return li;
    }),
  );
  if (empty) empty.hidden = rows.length > 0;
}

/** Run `task` now and every `ms` while the page is visible; returns a function to run it now. */
export function poll(task, ms) {
  let running = false;
  const run = async () => {
    if (running || document.hidden) return;
    running = true;
    try {
      await task();
    } finally {
      running = false;
    }
  };
  setInterval(run, ms);
  document.addEventListener("visibilitychange", run);
  run();
  return run;
}

export function banner(text) {
  const node = document.getElementById("banner");
  if (!node) return;
  node.textContent = text || "";
  node.hidden = !text;
}

const USERS_QUERY = "query ($ids: [ID!]) { users(ids: $ids) { id name } }";
const names = new Map();

/**
 * Names of monday users (seamless api(), scope users:read), cached for the page's life.
 * Unknown or unreachable names stay absent; callers fall back to "user <id>".
 */
export async function loadUserNames(ids) {
  const missing = [...new Set(ids.filter((id) => id !== null && id !== undefined && id !== "").map(String))].filter(
    (id) => !names.has(id),
  );
  if (missing.length) {
    try {
      const result = await withTimeout(monday.api(USERS_QUERY, { variables: { ids: missing } }), SDK_TIMEOUT_MS, "users");
      const users = (result && result.data && result.data.users) || [];
      for (const user of users) names.set(String(user.id), String(user.name));
    } catch (_) {
      // Names are a nicety; ids still identify people.
    }
  }
  return names;
}

export function knownName(id) {
  return names.get(String(id));
}
