// Slow and dead consumers: a client that stops reading is closed with
// stream-error (lagging) and resumes from history; clients that vanish are
// noticed and their channel sockets released, so subscriber counts stay right.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { useWorker } from './support/worker.mjs';
import { subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish, readRaw, streamUrl } from './support/sse.mjs';
import { channelStats } from './support/http.mjs';


async function eventually(check, timeoutMs = 10_000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last === true) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

describe('consumers', () => {
  const worker = useWorker({ vars: { KEEPALIVE_SECONDS: '1', RETRY_MS: '100' } });

  test('streams that disconnect are released and the subscriber count returns to zero', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const token = await subscriber(tenant);
    const clients = Array.from({ length: 5 }, () => subscribe(worker.url, [channel], { token }));
    await Promise.all(clients.map((c) => c.opened()));
    // Streams on a hub are counted from its reports, within a tenth of a second.
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 5 || (await channelStats(worker.url, channel)), 10_000, '5 subscribers');

    for (const c of clients.slice(0, 3)) c.close();
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 2 || (await channelStats(worker.url, channel)), 10_000, '2 subscribers');
    for (const c of clients.slice(3)) c.close();
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 0 || (await channelStats(worker.url, channel)), 10_000, '0 subscribers');
  });

  test('a client that stops reading gets stream-error lagging and resumes from history', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const token = await subscriber(tenant);
    const pub = await publisher(tenant);

    // A raw client that sends its request and then does not read a byte.
    const { port } = new URL(worker.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.pause();
    const path = new URL(streamUrl(worker.url, [channel])).pathname + new URL(streamUrl(worker.url, [channel])).search;
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 1, 5000, 'attach');

    // Publish far more than socket buffers and the relay's per-stream limit hold.
    const blob = 'x'.repeat(60_000);
    let published = 0;
    for (let batch = 0; batch < 12; batch++) {
      const events = Array.from({ length: 50 }, () => ({ channel, event: 'blob.sent', data: { n: ++published, blob } }));
      const res = await publish(worker.url, pub, { events });
      assert.equal(res.status, 202, res.text);
    }
    // The relay gives up on the stream: its channel socket is released even
    // though the client never read anything.
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 0, 15_000, 'lagging stream released');

    // Reading now, the client finds the events it had room for, then the error.
    socket.resume();
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      text += d;
    });
    await eventually(() => text.includes('event: stream-error'), 15_000, 'stream-error');
    socket.destroy();
    const error = text.slice(text.indexOf('event: stream-error'));
    assert.match(error, /"code":"lagging"/);
    const ids = [...text.matchAll(/^id: .*:(\d+)$/gm)].map((m) => Number(m[1]));
    assert.ok(ids.length < published, 'the lagging client did not get everything live');
    const lastSeen = ids.at(-1) ?? 0;

    // Resuming from its last id delivers the rest, exactly once, in order.
    // The resumed stream is ~24 MB: looking for the last event only in the
    // newest text keeps this client fast enough not to be lagging itself
    // (keep-alives are 1 s here, so a write unread for ~2 s counts).
    const last = `"n":${published},`;
    const { text: rest } = await readRaw(
      streamUrl(worker.url, [channel], { lastEventId: `${encodeURIComponent(channel)}:${lastSeen}` }),
      { headers: { Authorization: `Bearer ${token}` }, done: (t) => t.includes(last, t.length - 200_000), timeoutMs: 60_000 },
    );
    assert.ok(!rest.includes('event: stream-error'), rest.slice(rest.indexOf('event: stream-error')).slice(0, 200));
    const resumed = [...rest.matchAll(/"n":(\d+),/g)].map((m) => Number(m[1]));
    assert.deepEqual(resumed, Array.from({ length: published - lastSeen }, (_, i) => lastSeen + 1 + i));
  });
});
