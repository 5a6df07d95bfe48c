// The settings view (admins): sender policy, quiet hours and the digest window, connect the
// app (OAuth in a new window), the installer's API key, and what is connected; for everyone,
// their own mute of this app (contract §12). Secrets are never displayed: the server only
// ever returns whether a credential is connected, its owner, when it was verified and last 4.
import {
  ApiError,
  api,
  banner,
  friendlyMessage,
  outsideMonday,
  knownName,
  loadUserNames,
  notice,
  showError,
  watchContext,
} from "./common.js";

const policyForm = document.getElementById("policy-form");
const keyForm = document.getElementById("api-key-form");
const keyInput = document.getElementById("api-key");
const removeKey = document.getElementById("remove-api-key");
const connectApp = document.getElementById("connect-app");
const installerCell = document.getElementById("installer");
const oauthCell = document.getElementById("oauth-state");
const keyCell = document.getElementById("api-key-state");
const scheduleForm = document.getElementById("schedule-form");
const quietOn = document.getElementById("quiet-on");
const quietStart = document.getElementById("quiet-start");
const quietEnd = document.getElementById("quiet-end");
const digestWindow = document.getElementById("digest-window");
const scheduleError = document.getElementById("schedule-error");
const scheduleStatus = document.getElementById("schedule-status");
const muteAll = document.getElementById("mute-all");
const muteOthers = document.getElementById("mute-others");
const muteError = document.getElementById("mute-error");

const state = { context: null, installation: null, isAdmin: false, userId: null };

function person(id) {
  return knownName(id) || `user ${id}`;
}

function describe(credential) {
  if (!credential) return "Not connected";
  const parts = [`Connected (${person(credential.owner_user_id)}`];
  if (credential.last4) parts.push(`, ends in …${credential.last4}`);
  parts.push(")");
  if (credential.verified_at) parts.push(`, verified ${new Date(credential.verified_at).toLocaleString()}`);
  if (credential.needs_reconnect) parts.push(" – monday rejected it, connect it again");
  return parts.join("");
}

function render() {
  const inst = state.installation || {};
  const credentials = Array.isArray(inst.credentials) ? inst.credentials : [];
  const installer = inst.installer_user_id;
  installerCell.textContent = installer
    ? `${person(installer)}${inst.installed ? "" : " (not yet confirmed by monday's install event)"}`
    : "Nobody yet: the first admin to connect a credential becomes the installer";
  const oauth = credentials.filter((c) => c.kind === "oauth");
  // A member sees only their own OAuth token (GET /installation hides the others'): with none,
  // the app may still be connected by the installer, and "Not connected" would say it is not.
  const noOAuth = state.isAdmin ? "Not connected" : "Not connected by you (only admins see the installer's)";
  oauthCell.textContent = oauth.length ? oauth.map(describe).join("; ") : noOAuth;
  keyCell.textContent = describe(credentials.find((c) => c.kind === "api_key"));
  for (const input of policyForm.elements.sender_policy) {
    input.checked = input.value === (inst.sender_policy || "app_then_installer");
  }
  const mayEditPolicy = state.isAdmin;
  for (const el of policyForm.elements) el.disabled = !mayEditPolicy;
  renderSchedule(inst);
  const mayKey = state.isAdmin || (installer && String(installer) === String(state.userId));
  for (const el of keyForm.elements) el.disabled = !mayKey;
  removeKey.disabled = !mayKey || !credentials.some((c) => c.kind === "api_key");
}

/** Quiet hours and the digest window as stored; only admins may change them (§12). */
function renderSchedule(inst) {
  const quiet = inst.quiet_hours || null;
  quietOn.checked = Boolean(quiet);
  if (quiet) {
    quietStart.value = quiet.start;
    quietEnd.value = quiet.end;
  }
  digestWindow.value = String(inst.digest_window_seconds ?? 0);
  for (const el of scheduleForm.elements) el.disabled = !state.isAdmin;
  if (state.isAdmin) toggleQuietFields();
}

function toggleQuietFields() {
  quietStart.disabled = !quietOn.checked;
  quietEnd.disabled = !quietOn.checked;
}

/** What to show next to a form: the friendly words, plus the server's own message (§8). */
function formError(error) {
  const words = friendlyMessage(error);
  const told = error instanceof ApiError ? error.message : "";
  if (!told || words.includes(told) || error.code.startsWith("TOKEN_") || error.status >= 500) return words;
  return `${words} (${told})`;
}

async function load() {
  const answer = await api("/installation");
  state.installation = (answer && answer.data) || null;
  const credentials = (state.installation && state.installation.credentials) || [];
  await loadUserNames([
    state.installation && state.installation.installer_user_id,
    ...credentials.map((c) => c.owner_user_id),
  ]);
  render();
}

async function savePolicy(event) {
  event.preventDefault();
  const chosen = policyForm.elements.sender_policy.value;
  try {
    await api("/installation", { method: "PATCH", body: { sender_policy: chosen } });
    notice("Sender policy saved.", "success");
    await load();
  } catch (error) {
    showError(error);
  }
}

async function saveSchedule(event) {
  event.preventDefault();
  scheduleError.textContent = "";
  scheduleStatus.textContent = "";
  const text = digestWindow.value.trim();
  const seconds = Number(text);
  if (!text || !Number.isInteger(seconds)) {
    scheduleError.textContent = "The digest window must be a whole number of seconds (0 turns it off).";
    return;
  }
  // A time input's value is 24-hour "HH:MM" whatever the display; seconds are not asked for.
  const start = quietStart.value.slice(0, 5);
  const end = quietEnd.value.slice(0, 5);
  if (quietOn.checked && (!start || !end)) {
    scheduleError.textContent = "Give quiet hours a start and an end, or turn them off.";
    return;
  }
  const body = {
    quiet_hours: quietOn.checked ? { start, end } : null,
    digest_window_seconds: seconds,
  };
  try {
    await api("/installation", { method: "PATCH", body });
    notice("Quiet hours and digest saved.", "success");
    await load();
    scheduleStatus.textContent = "Saved.";
  } catch (error) {
    scheduleError.textContent = formError(error);
    showError(error);
  }
}

/** The caller's own mutes: "everything from this app" drives the switch; others are listed. */
async function loadMutes() {
  const answer = await api("/preferences/mutes");
  const mutes = (answer && answer.data) || [];
  muteAll.checked = mutes.some((mute) => mute.target === null);
  const targeted = mutes.filter((mute) => mute.target !== null);
  muteOthers.hidden = targeted.length === 0;
  muteOthers.textContent = targeted.length
    ? `You have also muted ${targeted.length} item${targeted.length === 1 ? "" : "s"}: ` +
      targeted.map((mute) => `${mute.target.collection} ${mute.target.item}`).join(", ")
    : "";
}

async function toggleMute() {
  const wanted = muteAll.checked;
  muteAll.disabled = true;
  muteError.textContent = "";
  try {
    await api("/preferences/mutes", { method: wanted ? "PUT" : "DELETE", body: { target: null } });
    notice(wanted ? "Notifications from this app are muted for you." : "Notifications from this app are on again.", "success");
    await loadMutes();
  } catch (error) {
    muteAll.checked = !wanted;
    muteError.textContent = formError(error);
    showError(error);
  } finally {
    muteAll.disabled = false;
  }
}

async function saveKey(event) {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) {
    notice("Paste the installer's personal API key first.", "error");
    return;
  }
  try {
    await api("/installation/api-key", { method: "PUT", body: { api_key: key } });
    keyInput.value = "";
    notice("API key connected.", "success");
    await load();
  } catch (error) {
    showError(error);
  }
}

async function deleteKey() {
  try {
    await api("/installation/api-key", { method: "DELETE" });
    notice("API key removed.", "success");
    await load();
  } catch (error) {
    showError(error);
  }
}

async function startOAuth() {
  // Open the window synchronously (popup blockers allow it only inside the click), then point it.
  const popup = window.open("about:blank", "monday-notify-oauth", "popup,width=560,height=720");
  try {
    const answer = await api("/oauth/start", { method: "POST", body: {} });
    const data = (answer && answer.data) || answer || {};
    if (!data.authorize_url) throw new ApiError(500, "NO_AUTHORIZE_URL", "The server didn't give an authorisation address.");
    if (popup && !popup.closed) popup.location.href = data.authorize_url;
    else window.open(data.authorize_url, "_blank", "noopener");
    notice("Finish connecting in the new window, then come back here.", "info");
    const timer = setInterval(() => {
      if (!popup || popup.closed) {
        clearInterval(timer);
        load().catch(() => undefined);
      }
    }, 1000);
  } catch (error) {
    if (popup && !popup.closed) popup.close();
    showError(error);
  }
}

async function main() {
  if (outsideMonday()) return;
  const context = await watchContext((next) => {
    state.context = next;
  });
  state.context = context;
  const user = (context && context.user) || {};
  state.isAdmin = Boolean(user.isAdmin) && !user.isViewOnly;
  state.userId = user.id;
  if (!state.isAdmin) {
    banner("Only account admins can change the account's settings. You can see them, and mute this app for yourself.");
  }
  policyForm.addEventListener("submit", savePolicy);
  scheduleForm.addEventListener("submit", saveSchedule);
  quietOn.addEventListener("change", toggleQuietFields);
  muteAll.addEventListener("change", toggleMute);
  keyForm.addEventListener("submit", saveKey);
  removeKey.addEventListener("click", deleteKey);
  connectApp.addEventListener("click", startOAuth);
  connectApp.disabled = Boolean(user.isViewOnly);
  try {
    await load();
  } catch (error) {
    showError(error);
  }
  try {
    await loadMutes();
  } catch (error) {
    muteError.textContent = formError(error);
  }
  document.body.dataset.ready = "1";
}

main().catch((error) => {
  showError(error);
  document.body.dataset.ready = "error";
});
