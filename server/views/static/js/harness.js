// The local monday: frames one of the app's views and answers monday-sdk-js' postMessage
// protocol for it (get sessionToken/context/settings, listen, execute notice, api, storage,
// and the SDK's background track/reportTime messages). Initial state comes from the URL:
// /dev?view=board&user=12&role=member&theme=dark

const $ = (id) => document.getElementById(id);
const frame = $("frame");
const controls = {
  view: $("view"),
  user: $("user"),
  role: $("role"),
  theme: $("theme"),
  expireNext: $("expire-next"),
  tokenLifetime: $("token-lifetime"),
  failureKind: $("failure-kind"),
  failureCount: $("failure-count"),
};
const THEMES = ["light", "dark", "black"];
const state = { info: null, storage: new Map(), listening: new Set(), instance: 0 };

async function call(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const first = payload && payload.errors && payload.errors[0];
    throw new Error((first && first.message) || `HTTP ${response.status}`);
  }
  return payload && payload.data;
}

function option(value, label) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = label;
  return node;
}

function line(list, text, className, limit = 60) {
  const li = document.createElement("li");
  li.textContent = text;
  if (className) li.className = className;
  list.prepend(li);
  while (list.children.length > limit) list.lastElementChild.remove();
  return li;
}

function currentUser() {
  return state.info.users.find((u) => u.id === controls.user.value) || state.info.users[0];
}

function context() {
  const user = currentUser();
  const role = controls.role.value;
  const board = state.info.board;
  const view = controls.view.value;
  const base = {
    theme: controls.theme.value,
    account: { id: String(state.info.account_id) },
    user: {
      id: String(user.id),
      isAdmin: role === "admin",
      isGuest: role === "guest",
      isViewOnly: role === "view_only",
      countryCode: "US",
      currentLanguage: "en",
      timeFormat: "24H",
      timeZoneOffset: 0,
    },
    region: "use1",
    app: { id: state.info.app_id || 10000, clientId: state.info.client_id },
    appVersion: { id: 1, name: "local", status: "draft", type: "major", versionData: { major: 1, minor: 0, patch: 0, type: "major" } },
    permissions: {
      approvedScopes: ["me:read", "users:read", "boards:read", "notifications:write"],
      requiredScopes: ["me:read", "users:read", "boards:read", "notifications:write"],
    },
  };
  if (view === "board") {
    return {
      ...base,
      appFeature: { type: "AppFeatureBoardView", name: "Notify" },
      boardId: Number(board.id),
      boardIds: [Number(board.id)],
      boardViewId: 9001,
      viewMode: "board",
      instanceId: 9001,
      instanceType: "board_view",
      workspaceId: Number(board.workspace_id),
    };
  }
  if (view === "widget") {
    return {
      ...base,
      appFeature: { type: "AppFeatureDashboardWidget", name: "Notify the owner" },
      boardIds: [Number(board.id)],
      widgetId: 9101,
      viewMode: "widget",
      editMode: false,
      instanceId: 9101,
      instanceType: "dashboard_widget",
    };
  }
  return {
    ...base,
    appFeature: { type: "AppFeatureAccountSettingsView", name: "monday-notify settings" },
    instanceId: 9201,
    instanceType: "account_settings_view",
  };
}

function widgetSettings() {
  const installer = state.info.users.find((u) => u.default_role === "admin") || state.info.users[0];
  return {
    owner_id: String(installer.id),
    subject: state.info.board.name,
    item_id: String(state.info.board.id),
    message: "Your attention is needed on the Launch board.",
  };
}

function applyTheme() {
  for (const name of THEMES) document.body.classList.remove(`${name}-app-theme`);
  document.body.classList.add(`${controls.theme.value}-app-theme`);
}

function syncUrl() {
  const url = new URL(window.location.href);
  url.searchParams.set("view", controls.view.value);
  url.searchParams.set("user", controls.user.value);
  url.searchParams.set("role", controls.role.value);
  url.searchParams.set("theme", controls.theme.value);
  history.replaceState(null, "", url.toString());
}

function loadFrame() {
  state.listening.clear();
  state.instance += 1;
  syncUrl();
  frame.src = `/views/${controls.view.value}`;
}

function pushContext() {
  applyTheme();
  syncUrl();
  const target = frame.contentWindow;
  if (target) target.postMessage({ method: "listen", type: "context", data: context() }, window.location.origin);
}

async function answer(message) {
  const { method, args = {}, requestId } = message;
  const type = args.type;
  const reply = (extra) => {
    const target = frame.contentWindow;
    if (target) target.postMessage({ method, type, requestId, ...extra }, window.location.origin);
  };
  if (!(method === "execute" && (type === "track" || type === "reportTime"))) {
    line($("messages"), `${method}${type ? ` ${type}` : ""}${method === "api" ? " (seamless)" : ""}`);
  }
  try {
    if (method === "get" && type === "sessionToken") {
      const expired = controls.expireNext.checked;
      controls.expireNext.checked = false;
      const lifetime = Number.parseInt(controls.tokenLifetime.value, 10) || 300;
      const data = await call("/dev/api/token", { user: controls.user.value, role: controls.role.value, expired, lifetime });
      if (expired) line($("messages"), "handed out an expired session token");
      reply({ data: data.token });
    } else if (method === "get" && type === "context") {
      reply({ data: context() });
    } else if (method === "get" && type === "settings") {
      reply({ data: controls.view.value === "widget" ? widgetSettings() : {} });
    } else if (method === "get" && type === "location") {
      reply({ data: { href: window.location.href, query: {}, search: "" } });
    } else if (method === "get" && type === "filter") {
      reply({ data: { term: "" } });
    } else if (method === "get") {
      reply({ data: null });
    } else if (method === "listen") {
      state.listening.add(type);
    } else if (method === "execute" && type === "notice") {
      const params = args.params || {};
      const kind = ["success", "error", "info"].includes(params.type) ? params.type : "info";
      line($("notices"), String(params.message ?? ""), `notice notice-${kind}`).dataset.type = kind;
      reply({ data: { success: true } });
    } else if (method === "execute" && (type === "track" || type === "reportTime")) {
      // The SDK's background analytics: acknowledged and otherwise ignored.
      reply({ data: { success: true } });
    } else if (method === "execute") {
      reply({ errorMessage: `The local monday does not support execute("${type}").`, data: null });
    } else if (method === "api") {
      const params = args.params || {};
      const result = await call("/dev/api/seamless", {
        user: controls.user.value,
        query: params.query,
        variables: params.variables || {},
        apiVersion: args.apiVersion || null,
      });
      reply({ data: result.body });
    } else if (method === "storage") {
      const key = `${args.segment}:${args.key}`;
      if (args.method === "set") state.storage.set(key, args.value);
      if (args.method === "delete") state.storage.delete(key);
      reply({ data: { success: true, value: state.storage.get(key) ?? null } });
    } else if (method === "set") {
      reply({ data: { success: true } });
    } else {
      reply({ errorMessage: `The local monday does not know "${method}".`, data: null });
    }
  } catch (error) {
    line($("messages"), `failed to answer ${method} ${type || ""}: ${error.message}`, "notice-error");
    reply({ errorMessage: error.message, data: null });
  }
}

// ------------------------------------------------------------------ the view's socket

// The framed view keeps a log of its realtime socket (live.js) and announces each message with
// a "monday-notify:socket" event on its own window; the view is same-origin, so we can read
// both. Attaching on the view's first SDK message (or its load) is early enough, because the
// log holds what came before: nothing is missed and nothing is shown twice.
// Keyed by the view's log array, which is new on every page load (the frame's WindowProxy is
// not: it stays the same object across reloads).
const watchedLogs = new WeakSet();

function showSocketEntry(entry) {
  const kind = entry.direction === "state" ? "socket-state" : `socket-${entry.direction}`;
  const li = line($("socket-messages"), String(entry.summary || ""), kind, 120);
  if (entry.message) li.title = JSON.stringify(entry.message).slice(0, 2000);
}

function watchSocketOf(win) {
  let log;
  try {
    log = win && win.mondayNotifySocketLog;
    if (!Array.isArray(log) || watchedLogs.has(log)) return;
    win.addEventListener("monday-notify:socket", (event) => showSocketEntry(event.detail));
  } catch (_) {
    return; // not readable yet (about:blank during a reload): the next message tries again
  }
  watchedLogs.add(log);
  for (const entry of log) showSocketEntry(entry);
}

frame.addEventListener("load", () => watchSocketOf(frame.contentWindow));

window.addEventListener("message", (event) => {
  // Only the framed view speaks to us, and only from our own origin.
  if (event.source !== frame.contentWindow || event.origin !== window.location.origin) return;
  watchSocketOf(frame.contentWindow);
  const message = event.data;
  if (!message || typeof message !== "object" || typeof message.method !== "string") return;
  answer(message);
});

async function refreshBells() {
  try {
    const bells = await call("/dev/api/bell");
    const root = $("bells");
    const sections = bells.map(({ user, notifications }) => {
      const section = document.createElement("section");
      section.className = "bell";
      section.dataset.user = user.id;
      const title = document.createElement("h3");
      const name = document.createElement("span");
      name.textContent = user.name;
      const count = document.createElement("span");
      count.className = "muted small bell-count";
      count.textContent = `${notifications.length}`;
      title.append(name, count);
      const list = document.createElement("ul");
      for (const n of [...notifications].reverse()) {
        const li = document.createElement("li");
        li.dataset.fromApp = n.from_app ? "1" : "0";
        const text = document.createElement("div");
        text.className = "bell-text";
        text.textContent = n.text;
        const from = document.createElement("div");
        from.className = `bell-from${n.from_app ? " from-app" : ""}`;
        from.textContent = n.from_app ? "from the app" : `from ${n.shown_from}`;
        li.append(text, from);
        list.append(li);
      }
      section.append(title, list);
      return section;
    });
    root.replaceChildren(...sections);
  } catch (_) {
    // The next refresh tries again.
  }
}

async function main() {
  state.info = await call("/dev/api/state");
  const params = new URL(window.location.href).searchParams;
  controls.user.replaceChildren(...state.info.users.map((u) => option(u.id, `${u.name} (${u.id})`)));
  controls.failureKind.replaceChildren(...state.info.failure_kinds.map((k) => option(k, k.replaceAll("_", " "))));
  const pick = (select, value) => {
    if (value && [...select.options].some((o) => o.value === value)) select.value = value;
  };
  pick(controls.view, params.get("view"));
  pick(controls.user, params.get("user"));
  controls.role.value = currentUser().default_role;
  pick(controls.role, params.get("role"));
  pick(controls.theme, params.get("theme"));
  applyTheme();

  controls.view.addEventListener("change", loadFrame);
  controls.user.addEventListener("change", () => {
    controls.role.value = currentUser().default_role;
    loadFrame();
  });
  controls.role.addEventListener("change", loadFrame);
  controls.theme.addEventListener("change", pushContext);
  $("reload").addEventListener("click", loadFrame);
  $("inject").addEventListener("click", async () => {
    const kind = controls.failureKind.value;
    const count = Number.parseInt(controls.failureCount.value, 10) || 1;
    try {
      await call("/dev/api/fail", { kind, count });
      $("control-status").textContent = `The next ${count} monday call(s) will fail: ${kind}.`;
    } catch (error) {
      $("control-status").textContent = error.message;
    }
  });
  $("reset").addEventListener("click", async () => {
    await call("/dev/api/reset", {});
    $("control-status").textContent = "The fake monday forgot everything it received.";
    refreshBells();
  });
  loadFrame();
  refreshBells();
  setInterval(refreshBells, 1500);
  document.body.dataset.ready = "1";
}

main().catch((error) => {
  line($("notices"), `The harness could not start: ${error.message}`, "notice notice-error");
});
