// Live ledger changes for the board view and the widget: Directus' realtime protocol over
// GET /websocket (contract §13, docs/realtime.md), with today's polling as the fallback.
//
// One socket per page. It authenticates with a fresh session token from monday (never in the
// URL: contract §3), re-authenticates before that token expires, subscribes with the same
// queries the page would poll with, and hands init/create/update/delete to the page. While the
// socket is live the page makes no polling request; when it cannot be opened or closes, the
// page polls as before and the socket is tried again later.
import { sessionToken } from "./common.js";

const COLLECTION = "directus_notifications";
// A socket that is not live (authenticated, every init received) by then is given up on:
// a proxy that swallows the upgrade would otherwise leave the page with no data at all.
const LIVE_WITHIN_MS = 8000;
// Waits before trying the socket again after a failure; the last one repeats.
const RETRY_MS = [5000, 20000, 60000];
// Re-authenticate this long before the token's `exp` (monday's session tokens last minutes).
const REAUTH_BEFORE_S = 60;
// Never re-authenticate more often than this, even with a token that looks about to expire
// (a skewed clock would otherwise make a tight loop).
const MIN_REAUTH_MS = 5000;
const LOG_SIZE = 200;

// ------------------------------------------------------------------ the message log

// What the socket said, for the local monday's "Socket messages" panel (/dev). The harness is
// same-origin and reads this log and the events; monday itself (another origin) cannot. Tokens
// are never recorded.
export const socketLog = [];
window.mondayNotifySocketLog = socketLog;

function record(direction, message, note) {
  const shown = message && message.access_token ? { ...message, access_token: "…" } : message;
  const entry = { at: Date.now(), direction, message: shown || null, summary: summarize(direction, shown, note) };
  socketLog.push(entry);
  if (socketLog.length > LOG_SIZE) socketLog.shift();
  window.dispatchEvent(new CustomEvent("monday-notify:socket", { detail: entry }));
}

/** One short line per message: "← update history (1 row)", "→ auth", "socket closed (1006)". */
function summarize(direction, message, note) {
  if (direction === "state") return note;
  const arrow = direction === "in" ? "←" : "→";
  if (!message || typeof message !== "object") return `${arrow} (not JSON)`;
  const parts = [arrow, String(message.type)];
  if (message.event) parts.push(String(message.event));
  if (message.status) parts.push(String(message.status));
  if (message.uid) parts.push(String(message.uid));
  if (Array.isArray(message.data)) parts.push(`(${message.data.length} ${message.data.length === 1 ? "row" : "rows"})`);
  if (message.error && message.error.code) parts.push(String(message.error.code));
  return parts.join(" ");
}

// ------------------------------------------------------------------ helpers

export function socketUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/websocket`;
}

/** The token's `exp` (seconds), read without verifying: only to time the next re-auth. */
function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    return typeof claims.exp === "number" ? claims.exp : null;
  } catch (_) {
    return null;
  }
}

/** When to re-authenticate with `token`: a minute before it expires, never sooner than 5 s. */
export function reauthDelayMs(token, nowMs = Date.now()) {
  const exp = tokenExpiry(token);
  if (exp === null) return 4 * 60 * 1000; // unknown lifetime: monday's tokens last ~5 minutes
  return Math.max(MIN_REAUTH_MS, (exp - REAUTH_BEFORE_S) * 1000 - nowMs);
}

/** Run `task` now and every `ms` while the page is visible, until stopped. */
function startPolling(task, ms) {
  let running = false;
  let stopped = false;
  const run = async () => {
    // One poll at a time, none while the tab is hidden: the next visible tick catches up.
    if (stopped || running || document.hidden) return;
    running = true;
    try {
      await task();
    } finally {
      running = false;
    }
  };
  const timer = setInterval(run, ms);
  document.addEventListener("visibilitychange", run);
  run();
  return {
    run,
    stop() {
      stopped = true;
      clearInterval(timer);
      document.removeEventListener("visibilitychange", run);
    },
  };
}

// ------------------------------------------------------------------ live or polling

/**
 * Keep a page up to date: live over the socket, else by polling.
 *
 * - `subscriptions`: `{uid: {query, event?}}`, the queries the page would poll with
 *   (an `event` subscription gets an init without data, then only that event);
 * - `onEvent(uid, event, data)`: `init` (rows), `create`/`update` (rows), `delete` (ids);
 * - `poll`: the page's polling task (used whenever the socket is not live), every `pollEveryMs`.
 *
 * Returns `refresh()`: polls now when polling; does nothing when live (changes arrive by
 * themselves, e.g. right after a send).
 */
export function liveOrPoll({ subscriptions, onEvent, poll, pollEveryMs }) {
  const uids = Object.keys(subscriptions);
  let polling = null;
  let attempt = 0;

  const setMode = (mode) => {
    document.body.dataset.live = mode;
  };

  const fallBack = () => {
    setMode("polling");
    if (!polling) polling = startPolling(poll, pollEveryMs);
    const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
    attempt += 1;
    setTimeout(connect, wait);
  };

  const becameLive = () => {
    attempt = 0;
    setMode("socket");
    if (polling) {
      polling.stop();
      polling = null;
    }
  };

  function connect() {
    setMode(polling ? "polling" : "connecting");
    openSocket({ subscriptions, uids, onEvent, onLive: becameLive, onGone: fallBack });
  }

  connect();
  return () => {
    if (polling) polling.run();
  };
}

/** One socket's life: open, auth, subscribe, deliver; `onGone` once when it ends or fails. */
function openSocket({ subscriptions, uids, onEvent, onLive, onGone }) {
  let socket;
  let ended = false;
  let reauthTimer = null;
  let subscribed = false;
  const inited = new Set();
  const liveTimer = setTimeout(() => end("not live in time"), LIVE_WITHIN_MS);

  const end = (why) => {
    if (ended) return;
    ended = true;
    clearTimeout(reauthTimer);
    clearTimeout(liveTimer);
    record("state", null, `socket closed (${why}): polling until it is back`);
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close();
    onGone();
  };

  const send = (message) => {
    if (ended || socket.readyState !== WebSocket.OPEN) return;
    record("out", message);
    socket.send(JSON.stringify(message));
  };

  // A fresh token for every auth, the first one and each re-auth (contract §13).
  const authenticate = async () => {
    if (ended) return;
    let token;
    try {
      token = await sessionToken();
    } catch (_) {
      end("no session token");
      return;
    }
    if (ended) return; // closed while monday was answering: no timer for a dead socket
    send({ type: "auth", access_token: token });
    clearTimeout(reauthTimer);
    reauthTimer = setTimeout(authenticate, reauthDelayMs(token));
  };

  const subscribeAll = () => {
    for (const uid of uids) {
      const { query, event } = subscriptions[uid];
      const message = { type: "subscribe", collection: COLLECTION, query, uid };
      if (event) message.event = event;
      send(message);
    }
  };

  const handle = (message) => {
    if (message.type === "ping") {
      send({ type: "pong" }); // the server closes a client that stays silent
    } else if (message.type === "auth") {
      if (message.status === "ok") {
        // Subscriptions survive a re-auth; only the first ok subscribes.
        if (!subscribed) {
          subscribed = true;
          subscribeAll();
        }
      } else if (message.error && message.error.code === "TOKEN_EXPIRED") {
        authenticate(); // the server holds our changes for 10 s: resume them now
      }
      // Any other auth error: the server closes the socket and `close` falls back.
    } else if (message.status === "error" && uids.includes(message.uid)) {
      // A refused `subscribe` (type "subscribe") or a failed read (type "subscription"): the
      // page cannot be kept up to date without this subscription, so it polls instead.
      end(`subscription refused: ${(message.error && message.error.code) || "error"}`);
    } else if (message.type === "subscription" && uids.includes(message.uid)) {
      if (message.event === "unsubscribe") return;
      onEvent(message.uid, message.event, Array.isArray(message.data) ? message.data : []);
      if (message.event === "init") {
        inited.add(message.uid);
        if (inited.size === uids.length) {
          clearTimeout(liveTimer);
          record("state", null, "socket live: no polling while it is open");
          onLive();
        }
      }
    }
  };

  try {
    socket = new WebSocket(socketUrl());
  } catch (_) {
    end("could not open");
    return;
  }
  socket.addEventListener("open", () => {
    record("state", null, "socket open");
    authenticate();
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (_) {
      record("in", null);
      return;
    }
    record("in", message);
    if (!ended && message && typeof message === "object") handle(message);
  });
  socket.addEventListener("close", (event) => end(event.code || "closed"));
  socket.addEventListener("error", () => end("error"));
}

// ------------------------------------------------------------------ applying changes

/**
 * A list of rows after a change: `create`/`update` replace or add rows by id, `delete` removes
 * ids; sorted newest first and cut to `limit`, as the polled query would return it.
 */
export function applyChange(rows, event, data, limit) {
  if (event === "init") return data.slice(0, limit);
  if (event === "delete") {
    const gone = new Set(data.map((id) => String(id && typeof id === "object" ? id.id : id)));
    return rows.filter((row) => !gone.has(String(row.id)));
  }
  const byId = new Map(rows.map((row) => [String(row.id), row]));
  for (const row of data) byId.set(String(row.id), { ...byId.get(String(row.id)), ...row });
  const time = (row) => Date.parse(row.timestamp) || 0;
  const newestFirst = (a, b) => time(b) - time(a) || Number(b.id) - Number(a.id);
  return [...byId.values()].sort(newestFirst).slice(0, limit);
}
