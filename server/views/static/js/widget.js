// The dashboard widget: one configurable "Notify the owner of …" button, the latest
// notifications and the caller's unread count. A double click notifies once: the button is
// disabled while a send is in flight, and each click intent carries its own Idempotency-Key.
import {
  ApiError,
  api,
  banner,
  outsideMonday,
  getSettings,
  knownName,
  ledgerQuery,
  loadUserNames,
  monday,
  newIdempotencyKey,
  notice,
  renderList,
  sendNotification,
  showError,
  watchContext,
} from "./common.js";
import { applyChange, liveOrPoll } from "./live.js";

const REFRESH_EVERY_MS = 4000;
const LATEST_LIMIT = 5;
// The caller's latest notifications, sent or received (the list) ...
const LATEST_QUERY = {
  filter: { _or: [{ recipient: { _eq: "$CURRENT_USER" } }, { sender: { _eq: "$CURRENT_USER" } }] },
  sort: "-timestamp",
  limit: LATEST_LIMIT,
};
// ... and what is unread: received and still in the inbox (the badge).
const UNREAD_FILTER = { _and: [{ recipient: { _eq: "$CURRENT_USER" } }, { status: { _eq: "inbox" } }] };

const button = document.getElementById("notify-owner");
const status = document.getElementById("notify-status");
const unread = document.getElementById("unread");
const latest = document.getElementById("latest");
const latestEmpty = document.getElementById("latest-empty");

const state = {
  context: null,
  settings: {},
  installation: null,
  inFlight: false,
  viewOnly: false,
  latest: [],
  unread: new Set(),
};

function nameOf(userId) {
  if (userId === null || userId === undefined || userId === "") return "someone";
  const me = state.context && state.context.user;
  if (me && String(me.id) === String(userId)) return "you";
  return knownName(userId) || `user ${userId}`;
}

/** Settings (monday's widget settings): owner, subject, message; sensible defaults. */
function config() {
  const s = state.settings || {};
  const inst = state.installation || {};
  const owner = s.owner_id ?? s.owner ?? inst.installer_user_id;
  const boards = (state.context && state.context.boardIds) || [];
  return {
    owner: owner === undefined || owner === null ? "" : String(owner),
    subject: String(s.subject || "this dashboard"),
    item: String(s.item_id || s.item || boards[0] || ""),
    message: String(s.message || "Your attention is needed on this dashboard."),
  };
}

function renderButton() {
  const c = config();
  button.textContent = `Notify the owner of ${c.subject}`;
  button.disabled = state.inFlight || state.viewOnly || !c.owner || !c.item;
}

/** The fallback when the socket is not live: poll the list and the count. */
async function refresh() {
  try {
    const [rows, count] = await Promise.all([
      api(ledgerQuery(LATEST_QUERY)),
      api(ledgerQuery({ filter: UNREAD_FILTER, aggregate: { count: "*" } })),
    ]);
    await showLatest((rows && rows.data) || []);
    showUnread(countOf(count));
  } catch (_) {
    // The next poll tries again; a transient failure is not worth a notice every few seconds.
  }
}

async function showLatest(list) {
  state.latest = list;
  await loadUserNames(list.flatMap((row) => [row.recipient, row.sender, row.credential_owner]));
  renderList(latest, latestEmpty, state.latest, nameOf);
}

function showUnread(unreadCount) {
  unread.textContent = String(unreadCount);
  unread.classList.toggle("badge-zero", unreadCount === 0);
}

/** The answer of `aggregate[count]=*` is `{"data": [{"count": N}]}`. */
function countOf(answer) {
  const first = answer && Array.isArray(answer.data) ? answer.data[0] : null;
  const number = Number(first && first.count);
  return Number.isFinite(number) ? number : 0;
}

// ------------------------------------------------------------------ live over the socket

// An aggregate cannot be subscribed to (§13), so the badge counts ids: `unread` lists the
// unread ids (init) and hears of new ones; `unread-changes` hears every update to a received
// row, whatever its status, because an update that no longer matches `unread`'s filter (read,
// archived) is not sent to `unread` at all. `limit: -1` is the ledger's maximum (10,000).
const LIVE_SUBSCRIPTIONS = {
  latest: { query: LATEST_QUERY },
  unread: { query: { filter: UNREAD_FILTER, fields: ["id"], limit: -1 } },
  "unread-changes": {
    query: { filter: { recipient: { _eq: "$CURRENT_USER" } }, fields: ["id", "status"] },
    event: "update",
  },
};

function onLiveEvent(uid, event, data) {
  if (uid === "latest") {
    showLatest(applyChange(state.latest, event, data, LATEST_LIMIT));
    return;
  }
  if (event === "init" && uid === "unread") state.unread = new Set(data.map((row) => String(row.id)));
  if (event === "create" || (event === "update" && uid === "unread")) {
    for (const row of data) state.unread.add(String(row.id));
  }
  if (event === "update" && uid === "unread-changes") {
    for (const row of data) if (row.status !== "inbox") state.unread.delete(String(row.id));
  }
  if (event === "delete") for (const id of data) state.unread.delete(String(id));
  showUnread(state.unread.size);
}

function watchLedger() {
  return liveOrPoll({
    subscriptions: LIVE_SUBSCRIPTIONS,
    onEvent: onLiveEvent,
    poll: refresh,
    pollEveryMs: REFRESH_EVERY_MS,
  });
}

let refreshNow = () => undefined;

async function onClick() {
  // The button is disabled synchronously, so the second click of a double click never sends.
  if (state.inFlight) return;
  const c = config();
  if (!c.owner || !c.item) return;
  state.inFlight = true;
  renderButton();
  status.textContent = "Sending…";
  const key = newIdempotencyKey();
  try {
    const row = await sendNotification(
      { recipient: c.owner, message: c.message, collection: "Project", item: c.item },
      key,
    );
    if (row && row.delivery_status === "failed") {
      notice(`The owner wasn't notified: ${(row.last_error && row.last_error.message) || "monday refused it"}`, "error");
      status.textContent = "Not delivered.";
    } else {
      notice("The owner has been notified.", "success");
      status.textContent = "Notified.";
    }
  } catch (error) {
    status.textContent = "Not sent.";
    showError(error, { viewOnly: state.viewOnly });
  } finally {
    state.inFlight = false;
    renderButton();
    refreshNow();
  }
}

async function main() {
  if (outsideMonday()) return;
  const context = await watchContext((next) => {
    state.context = next;
    renderButton();
  });
  state.context = context;
  state.viewOnly = Boolean(context && context.user && context.user.isViewOnly);
  state.settings = await getSettings();
  monday.listen("settings", (message) => {
    state.settings = (message && message.data) || {};
    renderButton();
  });
  try {
    const answer = await api("/installation");
    state.installation = (answer && answer.data) || null;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) showError(error);
  }
  if (state.viewOnly) banner("You have view-only access, so you can't send notifications.");
  renderButton();
  button.addEventListener("click", onClick);
  refreshNow = watchLedger();
  document.body.dataset.ready = "1";
}

main().catch((error) => {
  showError(error);
  document.body.dataset.ready = "error";
});
