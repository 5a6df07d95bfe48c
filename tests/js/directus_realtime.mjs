// The real Directus SDK's realtime() client (@directus/sdk 26) against GET /websocket.
//
//   node --experimental-websocket tests/js/directus_realtime.mjs <baseUrl> <sessionToken>
//
// Connects with handshake auth (staticToken), subscribes to directus_notifications, prints
// one JSON line "ready" once the subscription's init arrived, then one JSON line per message
// of the subscription; stops after a `delete` message. The Python test sends, patches and
// deletes through the REST API while this runs.
import { createDirectus, realtime, staticToken } from '@directus/sdk';

const [baseUrl, token] = process.argv.slice(2);
const client = createDirectus(baseUrl)
  .with(staticToken(token))
  .with(realtime({ authMode: 'handshake', reconnect: false }));

await client.connect();
const { subscription } = await client.subscribe('directus_notifications', {
  query: { fields: ['id', 'message', 'delivery_status', 'status'] },
});
for await (const message of subscription) {
  console.log(JSON.stringify(message));
  if (message.event === 'init') console.log(JSON.stringify({ ready: true }));
  if (message.event === 'delete') break;
}
client.disconnect();
process.exit(0);
