// The board view: compose a notification, see who it will be sent as, watch this board's ledger.
import {
  ApiError,
  SDK_TIMEOUT_MS,
  api,
  banner,
  outsideMonday,
  friendlyMessage,
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
  when,
  withTimeout,
} from "./common.js";
import { applyChange, liveOrPoll } from "./live.js";
import { isoWithOffset, localInputValue, parseLocalInput } from "./schedule.js";

const HISTORY_EVERY_MS = 3000;
const HISTORY_LIMIT = 20;
const BOARD_QUERY = `query ($ids: [ID!]) {
  boards(ids: $ids) { id name subscribers { id name } items_page(limit: 100) { items { id name } } }
}`;

const form = document.getElementById("compose");
const recipient = document.getElementById("recipient");
const target = document.getElementById("target");
const sendAs = document.getElementById("send-as");
const message = document.getElementById("message");
const whenChoice = document.getElementById("when");
const sendAtField = document.getElementById("send-at-field");
const sendAt = document.getElementById("send-at");
const sendAtZone = document.getElementById("send-at-zone");
const sendLaterNote = document.getElementById("send-later-note");
const sendButton = document.getElementById("send");
const status = document.getElementById("compose-status");
const senderName = document.getElementById("sender-name");
const history = document.getElementById("history");
const historyEmpty = document.getElementById("history-empty");
const historyUpdated = document.getElementById("history-updated");

const state = {
  context: null,
  boardId: null,
  people: new Map(),
  itemIds: [],
  installation: null,
  viewOnly: false,
  guest: false,
  isAdmin: false,
  userId: null,
  sending: false,
  // False when nobody can send as this caller (view-only, or the policy leaves their role
  // no sender): the Send button stays disabled.
  sendable: true,
  history: [],
};

function nameOf(userId) {
  if (userId === null || userId === undefined || userId === "") return "someone";
  return state.people.get(String(userId)) || knownName(userId) || `user ${userId}`;
}

function option(value, label) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = label;
  return node;
}

async function loadBoard() {
  const me = state.context.user || {};
  try {
    const result = await withTimeout(
      monday.api(BOARD_QUERY, { variables: { ids: [String(state.boardId)] } }),
      SDK_TIMEOUT_MS,
      "board",
    );
    const board = result && result.data && result.data.boards && result.data.boards[0];
    if (!board) throw new Error("no board");
    for (const person of board.subscribers || []) state.people.set(String(person.id), String(person.name));
    const items = (board.items_page && board.items_page.items) || [];
    state.itemIds = items.map((item) => String(item.id));
    target.replaceChildren(option("", `This board (${board.name})`), ...items.map((item) => option(String(item.id), `Item: ${item.name}`)));
  } catch (_) {
    // Without the board's people we can still notify ourselves; say so instead of failing.
    if (me.id) state.people.set(String(me.id), "Me");
    banner("We couldn't load this board's people from monday; you can only notify yourself for now.");
  }
  const people = [...state.people.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  recipient.replaceChildren(option("", "Choose someone…"), ...people.map(([id, name]) => option(id, name)));
}

function policyOf(installation) {
  return (installation && installation.sender_policy) || "app_then_installer";
}

function installerOf(installation) {
  const id = installation && installation.installer_user_id;
  return id === undefined || id === null ? null : String(id);
}

function allowedSenders() {
  const policy = policyOf(state.installation);
  const allowed = policy === "app" ? ["app"] : policy === "installer" ? ["installer"] : ["app", "installer"];
  return state.guest ? allowed.filter((s) => s !== "installer") : allowed;
}

function usable(kind, owners) {
  const credentials = (state.installation && state.installation.credentials) || [];
  return credentials.some(
    (c) => c.kind === kind && !c.needs_reconnect && owners.includes(String(c.owner_user_id)),
  );
}

/**
 * Sending later, the server sends (no relay from a view that may be closed by then): the app
 * needs an OAuth token of the caller or the installer, the installer their API key. A member
 * can't see the installer's OAuth token (GET /installation hides it), so it may be there.
 */
function describeLaterSender(allowed) {
  const installer = installerOf(state.installation);
  const owners = [state.userId, installer].filter(Boolean);
  for (const sender of sendAs.value ? [sendAs.value] : allowed) {
    if (sender === "app") {
      if (usable("oauth", owners)) return "the app";
      if (!state.isAdmin && installer && installer !== state.userId) return "the app, if it is connected";
    } else if (sender === "installer" && !state.guest && installer && usable("api_key", [installer])) {
      return `${nameOf(installer)} (the installer)`;
    }
  }
  return "nobody yet: sending later needs the app connected or the installer's API key (settings)";
}

function setSendable(sendable) {
  state.sendable = sendable;
  sendButton.disabled = state.sending || !sendable;
}

/** What the server will decide (contract §5), shown before sending. A live view can always relay. */
function describeSender() {
  if (state.viewOnly) {
    senderName.textContent = "nobody: view-only access can't send";
    setSendable(false);
    return;
  }
  setSendable(true);
  const allowed = allowedSenders();
  for (const node of sendAs.options) node.disabled = node.value !== "" && !allowed.includes(node.value);
  if (sendAs.value && !allowed.includes(sendAs.value)) sendAs.value = "";
  if (!allowed.length) {
    senderName.textContent = "nobody: your role can't send with this account's policy";
    setSendable(false);
    return;
  }
  if (whenChoice.value === "later") {
    senderName.textContent = describeLaterSender(allowed);
    return;
  }
  const policy = policyOf(state.installation);
  const chosen = sendAs.value || (policy === "installer" ? "installer" : "app");
  if (!allowed.includes(chosen)) {
    senderName.textContent = "nobody: your role can't send with this account's policy";
    setSendable(false);
    return;
  }
  if (chosen === "app") {
    senderName.textContent = "the app";
  } else {
    const installer = installerOf(state.installation);
    senderName.textContent = installer ? `${nameOf(installer)} (the installer)` : "the installer";
  }
}

async function loadInstallation() {
  try {
    const answer = await api("/installation");
    state.installation = (answer && answer.data) || null;
    const installer = installerOf(state.installation);
    if (installer && !state.people.has(installer)) await loadUserNames([installer]);
  } catch (error) {
    state.installation = null;
    if (error instanceof ApiError && error.status !== 404) showError(error);
  }
  describeSender();
}

// ------------------------------------------------------------------ the history

/** This board's history: the board itself and its items, newest first (one query, two uses). */
function historyQuery() {
  const items = [String(state.boardId), ...state.itemIds];
  return { filter: { item: { _in: items } }, sort: "-timestamp", limit: HISTORY_LIMIT };
}

/** A "Cancel" button on a scheduled row the caller may cancel (its sender or an admin, §12). */
function decorateRow(row, li) {
  if (row.delivery_status !== "scheduled" || state.viewOnly) return;
  if (!state.isAdmin && String(row.sender) !== String(state.userId)) return;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button secondary small cancel-scheduled";
  button.dataset.cancel = String(row.id);
  button.textContent = "Cancel";
  li.querySelector(".history-top").append(button);
}

function showHistory(rows, how) {
  state.history = rows;
  renderList(history, historyEmpty, rows, nameOf, decorateRow);
  historyUpdated.textContent = `· ${how} ${new Date().toLocaleTimeString()}`;
}

async function onHistoryClick(event) {
  const button = event.target.closest("button[data-cancel]");
  if (!button || button.disabled) return;
  button.disabled = true;
  try {
    await api(`/notifications/${encodeURIComponent(button.dataset.cancel)}`, {
      method: "PATCH",
      body: { delivery_status: "cancelled" },
    });
    notice("Scheduled notification cancelled: it won't be sent.", "success");
  } catch (error) {
    button.disabled = false;
    // 403 here means it is no longer scheduled (already on its way) or not yours to cancel.
    if (error instanceof ApiError && error.code === "FORBIDDEN") {
      notice(`It can't be cancelled any more: ${error.message}`, "error");
    } else {
      showError(error);
    }
  } finally {
    refreshNow();
  }
}

/** The fallback when the socket is not live: poll the same query. */
async function refreshHistory() {
  if (!state.boardId) return;
  try {
    const answer = await api(ledgerQuery(historyQuery()));
    showHistory((answer && answer.data) || [], "updated");
  } catch (error) {
    historyUpdated.textContent = "· couldn't refresh";
  }
}

/** A socket event (init/create/update/delete) applied to the list on screen. */
function onHistoryEvent(_uid, event, data) {
  showHistory(applyChange(state.history, event, data, HISTORY_LIMIT), "live");
}

/** Live history over the socket, polling when it is not open; returns "refresh now". */
function watchHistory() {
  return liveOrPoll({
    subscriptions: { history: { query: historyQuery() } },
    onEvent: onHistoryEvent,
    poll: refreshHistory,
    pollEveryMs: HISTORY_EVERY_MS,
  });
}

let refreshNow = () => undefined;

/** "Later" shows the date-time field, prefilled an hour ahead (whole minutes) the first time. */
function onWhenChange() {
  const later = whenChoice.value === "later";
  sendAtField.hidden = !later;
  sendLaterNote.hidden = !later;
  if (later && !sendAt.value) {
    const inAnHour = new Date(Date.now() + 3600 * 1000);
    inAnHour.setSeconds(0, 0);
    sendAt.value = localInputValue(inAnHour);
  }
  sendButton.textContent = later ? "Schedule notification" : "Send notification";
  describeSender();
}

/** The `send_at` to post, or undefined for "now"; throws a user-facing message if unusable. */
function chosenSendAt() {
  if (whenChoice.value !== "later") return undefined;
  const date = parseLocalInput(sendAt.value);
  if (!date) throw new Error("Pick the date and time to send it.");
  return isoWithOffset(date);
}

async function onSubmit(event) {
  event.preventDefault();
  if (state.sending) return;
  if (state.viewOnly) {
    notice(friendlyMessage(new ApiError(403, "FORBIDDEN", ""), { viewOnly: true }), "error");
    return;
  }
  const text = message.value.trim();
  if (!recipient.value) {
    notice("Choose who to notify.", "error");
    return;
  }
  if (!text) {
    notice("Write a message first.", "error");
    return;
  }
  const payload = {
    recipient: recipient.value,
    message: text,
    collection: "Project",
    item: target.value || String(state.boardId),
  };
  if (sendAs.value) payload.send_as = sendAs.value;
  try {
    const later = chosenSendAt();
    if (later) payload.send_at = later;
  } catch (error) {
    notice(error.message, "error");
    return;
  }
  state.sending = true;
  sendButton.disabled = true;
  status.textContent = payload.send_at ? "Scheduling…" : "Sending…";
  try {
    const row = await sendNotification(payload, newIdempotencyKey());
    const failed = row && row.delivery_status === "failed";
    if (row && row.delivery_status === "scheduled") {
      // With a digest window even a "now" row waits for its window (docs/scheduling.md).
      const at = when(row.send_at && !row.digest_id ? row.send_at : row.next_attempt_at);
      notice(`Notification to ${nameOf(payload.recipient)} scheduled for ${at}.`, "success");
      status.textContent = `Scheduled for ${at}.`;
      message.value = "";
    } else if (failed) {
      const reason = (row.last_error && row.last_error.message) || "monday refused it";
      notice(`The notification wasn't delivered: ${reason}`, "error");
      status.textContent = "Not delivered.";
    } else {
      notice(`Notification sent to ${nameOf(payload.recipient)}.`, "success");
      status.textContent = "Sent.";
      message.value = "";
    }
  } catch (error) {
    status.textContent = "Not sent.";
    showError(error, { viewOnly: state.viewOnly });
  } finally {
    state.sending = false;
    sendButton.disabled = !state.sendable;
    refreshNow();
  }
}

async function main() {
  if (outsideMonday()) return;
  const context = await watchContext((next) => {
    state.context = next;
  });
  state.context = context;
  const user = (context && context.user) || {};
  state.boardId = context.boardId ?? (context.boardIds && context.boardIds[0]);
  state.viewOnly = Boolean(user.isViewOnly);
  state.guest = Boolean(user.isGuest);
  state.isAdmin = Boolean(user.isAdmin);
  state.userId = user.id === undefined || user.id === null ? null : String(user.id);
  if (state.viewOnly) {
    banner("You have view-only access to this board, so you can't send notifications. Ask a board owner for edit access.");
    setSendable(false);
    for (const field of [recipient, target, sendAs, message, whenChoice, sendAt]) field.disabled = true;
  }
  if (!state.boardId) {
    banner("Open this view on a board to send notifications from it.");
    sendButton.disabled = true;
    return;
  }
  await loadBoard();
  await loadInstallation();
  sendAs.addEventListener("change", describeSender);
  whenChoice.addEventListener("change", onWhenChange);
  sendAtZone.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
  form.addEventListener("submit", onSubmit);
  history.addEventListener("click", onHistoryClick);
  refreshNow = watchHistory();
  document.body.dataset.ready = "1";
}

main().catch((error) => {
  showError(error);
  document.body.dataset.ready = "error";
});
