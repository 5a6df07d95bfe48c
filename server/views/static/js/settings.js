// The settings view (admins): sender policy, connect the app (OAuth in a new window), the
// installer's API key, and what is connected. Secrets are never displayed: the server only
// ever returns whether a credential is connected, its owner, when it was verified and last 4.
import {
  ApiError,
  api,
  banner,
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
  oauthCell.textContent = oauth.length ? oauth.map(describe).join("; ") : "Not connected";
  keyCell.textContent = describe(credentials.find((c) => c.kind === "api_key"));
  for (const input of policyForm.elements.sender_policy) {
    input.checked = input.value === (inst.sender_policy || "app_then_installer");
  }
  const mayEditPolicy = state.isAdmin;
  for (const el of policyForm.elements) el.disabled = !mayEditPolicy;
  const mayKey = state.isAdmin || (installer && String(installer) === String(state.userId));
  for (const el of keyForm.elements) el.disabled = !mayKey;
  removeKey.disabled = !mayKey || !credentials.some((c) => c.kind === "api_key");
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
    banner("Only account admins can change these settings. You can see what is connected.");
  }
  policyForm.addEventListener("submit", savePolicy);
  keyForm.addEventListener("submit", saveKey);
  removeKey.addEventListener("click", deleteKey);
  connectApp.addEventListener("click", startOAuth);
  connectApp.disabled = Boolean(user.isViewOnly);
  try {
    await load();
  } catch (error) {
    showError(error);
  }
  document.body.dataset.ready = "1";
}

main().catch((error) => {
  showError(error);
  document.body.dataset.ready = "error";
});
