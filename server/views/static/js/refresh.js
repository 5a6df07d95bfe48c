// Shown when a view was loaded with a `?sessionToken=` the server refused (expired, wrong app…).
// Ask monday for a fresh token and reload once with it; a second refusal stops here.
import { applyTheme, monday, sessionToken, withTimeout } from "./common.js";

const message = document.getElementById("refresh-message");

async function main() {
  try {
    const context = await withTimeout(monday.get("context"), 5000, "context");
    applyTheme(context && context.data && context.data.theme);
  } catch (_) {
    // The theme is cosmetic; carry on.
  }
  const url = new URL(window.location.href);
  if (url.searchParams.get("reloaded") === "1") {
    message.textContent = "monday couldn't confirm who you are. Close this view and open it again.";
    document.body.dataset.ready = "error";
    return;
  }
  try {
    const token = await sessionToken();
    url.searchParams.set("sessionToken", token);
    url.searchParams.set("reloaded", "1");
    window.location.replace(url.toString());
  } catch (_) {
    message.textContent = "monday didn't give us a new session. Close this view and open it again.";
    document.body.dataset.ready = "error";
  }
}

main();
