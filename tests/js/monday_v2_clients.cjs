// Drives monday-notify's POST /v2 the way monday's own clients do (tests/v2/test_js_clients.py).
//
//   node tests/js/monday_v2_clients.cjs <official|docs-fetch|official-error>
//   env: V2_URL (http://127.0.0.1:<port>/v2), MONDAY_TOKEN (a session token), RECIPIENT, TEXT
//
// The official client (@mondaydotcomorg/api) takes `endpoint` in its constructor
// (ApiClientConfig.endpoint; without it, the MONDAY_API_ENDPOINT env var, then
// https://api.monday.com/v2). Prints one JSON line with what the client returned.
"use strict";

const { ApiClient, ClientError } = require("@mondaydotcomorg/api");

const url = process.env.V2_URL;
const token = process.env.MONDAY_TOKEN;
const recipient = process.env.RECIPIENT;
const text = process.env.TEXT;

async function official() {
  const client = new ApiClient({ token, endpoint: url });
  const mutation = `mutation ($user: ID!, $item: ID!, $text: String!) {
    create_notification(user_id: $user, target_id: $item, text: $text, target_type: Project) { id text }
  }`;
  const data = await client.request(mutation, { user: recipient, item: "674387", text });
  const raw = await client.rawRequest(
    `mutation { a: create_notification(user_id: ${recipient}, target_id: 1, text: "raw", target_type: Post) { id } }`,
  );
  return { data, raw: { data: raw.data, status: raw.status, extensions: raw.extensions } };
}

async function officialError() {
  const client = new ApiClient({ token, endpoint: url });
  try {
    await client.request("query { me { id } }");
    return { thrown: false };
  } catch (error) {
    return {
      thrown: true,
      isClientError: error instanceof ClientError,
      status: error.response && error.response.status,
      errors: error.response && error.response.errors,
    };
  }
}

// Exactly the JavaScript example of monday's create_notification docs, pointed at V2_URL.
async function docsFetch() {
  const query = `mutation { create_notification (user_id: ${recipient}, target_id: 674387, text: "This is a notification", target_type: Project) { text } }`;
  const res = await fetch(url, {
    method: "post",
    headers: {
      "Content-Type": "application/json",
      Authorization: token,
    },
    body: JSON.stringify({ query: query }),
  });
  return { status: res.status, body: await res.json() };
}

const modes = { official, "official-error": officialError, "docs-fetch": docsFetch };

modes[process.argv[2]]()
  .then((result) => process.stdout.write(JSON.stringify(result) + "\n"))
  .catch((error) => {
    process.stderr.write(String((error && error.stack) || error) + "\n");
    process.exit(1);
  });
