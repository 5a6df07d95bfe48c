// The real Directus SDK (@directus/sdk 26, node_modules) against our ledger API.
//
//   node tests/js/directus_sdk.mjs <baseUrl> <sessionToken> <recipient>
//
// Uses only the SDK's public notification helpers with `rest()` and `staticToken()` (which
// sends `Authorization: Bearer <token>`). Prints one JSON object: what each SDK call returned,
// plus the raw HTTP exchanges (status, query string, body) recorded by a wrapping `fetch`, so
// the test can check what the SDK really sent and what it discarded (e.g. `meta`).
import {
  aggregate,
  createDirectus,
  createNotification,
  createNotifications,
  deleteNotification,
  deleteNotifications,
  isDirectusError,
  readNotification,
  readNotifications,
  rest,
  staticToken,
  updateNotification,
  updateNotifications,
  updateNotificationsBatch,
} from '@directus/sdk';

const [baseUrl, token, recipient] = process.argv.slice(2);
if (!baseUrl || !token || !recipient) {
  console.error('usage: directus_sdk.mjs <baseUrl> <token> <recipient>');
  process.exit(2);
}

const exchanges = [];
async function recordingFetch(input, init) {
  const response = await fetch(input, init);
  const url = new URL(String(input));
  const text = await response.clone().text();
  exchanges.push({
    method: init?.method ?? 'GET',
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    authorization: init?.headers?.Authorization ?? null,
    status: response.status,
    contentType: response.headers.get('Content-Type'),
    body: text ? JSON.parse(text) : null,
  });
  return response;
}

const client = createDirectus(baseUrl, { globals: { fetch: recordingFetch } })
  .with(staticToken(token))
  .with(rest());

const lastExchange = () => exchanges[exchanges.length - 1];
const out = {};

// create = send: one object, then an array.
out.created = await client.request(
  createNotification({
    recipient,
    subject: 'From the Directus SDK',
    message: 'Deploy finished',
    collection: 'Project',
    item: '5550001',
  }),
);
out.createdMany = await client.request(
  createNotifications([
    { recipient, message: 'Second from the SDK', collection: 'Project', item: '5550002' },
    { recipient, message: 'Third from the SDK', collection: 'Post', item: '5550003' },
  ]),
);
const ids = [out.created.id, ...out.createdMany.map((n) => n.id)];

// Lists with filter, sort, limit, fields and meta (the SDK keeps only `data`; the raw
// response shows `meta`).
out.list = await client.request(
  readNotifications({
    fields: ['id', 'message', 'status', 'recipient'],
    filter: { _and: [{ recipient: { _eq: recipient } }, { id: { _in: ids } }] },
    sort: ['-id'],
    limit: 2,
    meta: 'filter_count',
  }),
);
out.listExchange = lastExchange();
out.searchList = await client.request(
  readNotifications({ search: 'SDK', fields: ['id'], sort: 'id' }),
);

// One by id.
out.one = await client.request(readNotification(ids[0], { fields: ['id', 'message', 'status'] }));

// Archive one, then the other two by keys, then unarchive one with the batch form.
out.updated = await client.request(updateNotification(ids[0], { status: 'archived' }));
out.updatedMany = await client.request(
  updateNotifications(ids.slice(1), { status: 'archived' }, { fields: ['id', 'status'] }),
);
out.updatedBatch = await client.request(
  updateNotificationsBatch([{ id: ids[2], status: 'inbox' }], { fields: ['id', 'status'] }),
);

// Aggregate: how many of ours are archived (the bell's "unread" style count).
out.archivedCount = await client.request(
  aggregate('directus_notifications', {
    aggregate: { count: '*' },
    query: { filter: { _and: [{ status: { _eq: 'archived' } }, { id: { _in: ids } }] } },
  }),
);
out.countByStatus = await client.request(
  aggregate('directus_notifications', {
    aggregate: { count: '*' },
    groupBy: ['status'],
    query: { filter: { id: { _in: ids } } },
  }),
);

// Refusal: editing the message is not allowed; the SDK raises a Directus error.
try {
  await client.request(updateNotification(ids[0], { message: 'rewritten' }));
  out.editRefused = null;
} catch (error) {
  out.editRefused = {
    isDirectusError: isDirectusError(error),
    status: error.response?.status ?? null,
    code: error.errors?.[0]?.extensions?.code ?? null,
    message: error.message,
  };
}

// Delete one, then the rest by keys (204: the SDK returns null).
out.deleted = await client.request(deleteNotification(ids[0]));
out.deleteExchange = lastExchange();
out.deletedMany = await client.request(deleteNotifications(ids.slice(1)));
out.afterDelete = await client.request(
  readNotifications({ filter: { id: { _in: ids } }, fields: ['id'] }),
);

// A deleted (or foreign) row is 403 FORBIDDEN, never 404.
try {
  await client.request(readNotification(ids[0]));
  out.readDeleted = null;
} catch (error) {
  out.readDeleted = {
    isDirectusError: isDirectusError(error),
    status: error.response?.status ?? null,
    code: error.errors?.[0]?.extensions?.code ?? null,
  };
}

out.ids = ids;
out.authorizations = [...new Set(exchanges.map((e) => e.authorization))];
out.statuses = exchanges.map((e) => `${e.method} ${e.path} ${e.status}`);
console.log(JSON.stringify(out));
