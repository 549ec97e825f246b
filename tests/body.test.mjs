// STREAM_BODY=script: a stream's response body is a JavaScript stream the
// relay fills instead of workerd's pipe (the rest of the suite runs the
// default, native). Everything a stream promises holds on it: every event
// once and in order on the hub's live path and on a stream of two channels
// (the pump's path), resume after a dropped connection, a client that stops
// reading cut as lagging while the others go on, a client that goes away
// released, and a kick that ends the stream with its error frame.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './support/worker.mjs';
import { subscriber, publisher, newTenant, channelOf, token } from './support/tokens.mjs';
import { subscribe, publish, stalledStream } from './support/sse.mjs';
import { channelStats } from './support/http.mjs';
import { sleep, eventually } from './support/wait.mjs';

const seqOf = (id) => Number(id.slice(id.lastIndexOf(':') + 1));

/** The data events of `channel` on the stream are exactly `1..=count`, in order. */
function assertExactlyOnce(stream, channel, count, name) {
  const seqs = stream
    .data()
    .filter((e) => JSON.parse(e.data).channel === channel)
    .map((e) => seqOf(e.id.split(',').find((part) => decodeURIComponent(part).startsWith(channel)) ?? e.id));
  assert.deepEqual(seqs, Array.from({ length: count }, (_, i) => i + 1), `${name}: ${JSON.stringify(seqs)}`);
}

async function publishEach(url, pub, channel, count) {
  for (let i = 0; i < count; i++) {
    const res = await publish(url, pub, { events: [{ channel, event: 'tick.sent', data: { channel, i } }] });
    assert.equal(res.status, 202, res.text);
  }
}

describe('STREAM_BODY=script', () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { STREAM_BODY: 'script', KEEPALIVE_SECONDS: '1', RETRY_MS: '100', MAX_EVENT_BYTES: '2048' } });
  });
  after(() => worker.stop());

  test('streams of one channel and of two get every event once, in order, and resume after a drop', async () => {
    const tenant = newTenant();
    const [a, b] = [channelOf(tenant), channelOf(tenant)];
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    const single = Array.from({ length: 6 }, () => subscribe(worker.url, [a], { token: tok, types: ['tick.sent'] }));
    const both = subscribe(worker.url, [a, b], { token: tok, types: ['tick.sent'] });
    const streams = [...single, both];
    try {
      await Promise.all(streams.map((s) => s.opened()));
      await publishEach(worker.url, pub, a, 10);
      await publishEach(worker.url, pub, b, 10);
      await Promise.all(single.map((s) => s.waitForData(10, 10_000)));
      await both.waitForData(20, 10_000);
      single[0].drop();
      both.drop();
      await publishEach(worker.url, pub, a, 10);
      await publishEach(worker.url, pub, b, 10);
      await Promise.all(single.map((s) => s.waitForData(20, 15_000)));
      await both.waitForData(40, 15_000);
      await sleep(300);
      single.forEach((s, i) => assertExactlyOnce(s, a, 20, `stream ${i}`));
      assertExactlyOnce(both, a, 20, 'the two-channel stream, first channel');
      assertExactlyOnce(both, b, 20, 'the two-channel stream, second channel');
      assert.equal(single[0].connections.length, 2, 'the dropped stream reconnected');
      assert.equal(both.connections.length, 2, 'the dropped two-channel stream reconnected');
      for (const s of streams) assert.ok(!s.events.some((e) => e.type === 'stream-error'), JSON.stringify(s.events.filter((e) => e.type === 'stream-error')));
    } finally {
      for (const s of streams) s.close();
    }
    await eventually(async () => (await channelStats(worker.url, a)).streams === 0 || (await channelStats(worker.url, a)), 10_000, 'closed streams released');
  });

  test('a client that stops reading is cut as lagging; the others get every event', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    const stalled = await stalledStream(worker.url, [channel], tok);
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 1 || (await channelStats(worker.url, channel)), 10_000, 'the stalled stream counted');
    const others = Array.from({ length: 3 }, () => subscribe(worker.url, [channel], { token: tok, types: ['blob.sent'] }));
    try {
      await Promise.all(others.map((s) => s.opened()));
      const blob = 'x'.repeat(1800);
      let published = 0;
      for (let batch = 0; batch < 40; batch++) {
        const events = Array.from({ length: 100 }, () => ({ channel, event: 'blob.sent', data: { channel, n: ++published, blob } }));
        const res = await publish(worker.url, pub, { events });
        assert.equal(res.status, 202, res.text);
      }
      await Promise.all(others.map((s) => s.waitForData(published, 30_000)));
      await sleep(300);
      others.forEach((s, i) => assertExactlyOnce(s, channel, published, `stream ${i}`));
      await eventually(async () => (await channelStats(worker.url, channel)).streams === 3 || (await channelStats(worker.url, channel)), 15_000, 'the lagging stream released');
      stalled.resume();
      await eventually(() => stalled.text().includes('"code":"lagging"'), 15_000, 'the stalled client told it lags');
    } finally {
      stalled.destroy();
      for (const s of others) s.close();
    }
  });

  test('a kicked stream ends with its error frame and the response ends', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const admin = await token({ scope: 'events:admin events:platform' });
    const stream = subscribe(worker.url, [channel], { token: await subscriber(tenant, { sub: 'alice' }) });
    try {
      await stream.opened();
      const res = await fetch(new URL('/v1/admin/kick', worker.url), {
        method: 'POST',
        headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ tenant, user: 'alice', ttl_seconds: 60 }),
      });
      assert.equal(res.status, 200, await res.text());
      await stream.until(() => stream.events.some((e) => e.type === 'stream-error'), 10_000, 'the kick');
      assert.equal(JSON.parse(stream.events.find((e) => e.type === 'stream-error').data).code, 'kicked');
      // The response ended: the client's next connection is refused while
      // the user is revoked, so it shows up as an error, not as events.
      await stream.until(() => stream.errors.length > 0 || stream.connections.length > 1, 10_000, 'the response to end');
    } finally {
      stream.close();
    }
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 0 || (await channelStats(worker.url, channel)), 10_000, 'the kicked stream released');
  });
});
