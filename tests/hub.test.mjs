// The hub (HUB_DISPATCH_BUDGET above 0): the streams of one channel in one
// worker share one socket to the channel's object. Every stream still gets
// every event once and in order while the socket changes hands: its owner
// ends, is kicked, stops reading, spends its dispatch budget, or the object
// restarts under it; late streams catch up from history; stats count streams.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, publisher, newTenant, channelOf, token } from './support/tokens.mjs';
import { subscribe, publish, stalledStream, streamUrl } from './support/sse.mjs';
import { channelStats } from './support/http.mjs';
import { sleep, eventually } from './support/wait.mjs';

const seqOf = (id) => Number(id.slice(id.lastIndexOf(':') + 1));

/** The stream's data events are exactly `from..=to`, each once, in order. */
function assertExactlyOnce(stream, from, to, name) {
  const seqs = stream.data().map((e) => seqOf(e.id));
  const want = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  assert.deepEqual(seqs, want, `${name}: ${JSON.stringify(seqs)}`);
  assert.ok(!stream.events.some((e) => e.type === 'stream-error'), `${name} ended: ${JSON.stringify(stream.events.filter((e) => e.type === 'stream-error'))}`);
}

/** Publishes `count` events, one publish every `pauseMs`; returns the last seq. */
async function publishEach(url, pub, channel, count, pauseMs = 0, onEach = () => {}) {
  let last;
  for (let i = 0; i < count; i++) {
    const res = await publish(url, pub, { events: [{ channel, event: 'tick.sent', data: { i } }] });
    assert.equal(res.status, 202, res.text);
    last = res.body?.results?.[0]?.id ?? last;
    await onEach(i);
    if (pauseMs) await sleep(pauseMs);
  }
  return last;
}

/** The object's "hub joined" lines after the first `from` lines. */
const hubJoins = (logs, from) =>
  logs.lines
    .slice(from)
    .filter((l) => l.message.includes('"msg":"hub joined"'))
    .map((l) => JSON.parse(l.message.slice(l.message.indexOf('{'))));

const hubAttaches = (logs) => logs.lines.filter((l) => l.message.includes('"msg":"hub attached"')).length;

function closeAll(streams) {
  for (const s of streams) s.close();
}

describe('hub', () => {
  const logs = logCollector();
  let worker;
  let admin;
  before(async () => {
    worker = await startWorker({
      vars: { HUB_DISPATCH_BUDGET: '1000000', KEEPALIVE_SECONDS: '1', RETRY_MS: '100', MAX_EVENT_BYTES: '2048', REQUEST_LOG: 'all' },
      handleStructuredLogs: logs.handleStructuredLogs,
      resettable: true,
    });
    admin = await token({ scope: 'events:admin events:platform' });
  });
  after(() => worker.stop());

  test('40 streams of one channel hold one socket to its object; each gets every event once, in order; stats count streams', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    const attachesBefore = hubAttaches(logs);
    const streams = Array.from({ length: 40 }, () => subscribe(worker.url, [channel], { token: tok, types: ['tick.sent'] }));
    try {
      await Promise.all(streams.map((s) => s.opened()));
      // Counted as soon as they are open: the object asks the hub.
      assert.equal((await channelStats(worker.url, channel)).streams, 40);
      const last = await publishEach(worker.url, pub, channel, 30);
      assert.equal(last, 30);
      await Promise.all(streams.map((s) => s.waitForData(30, 15_000)));
      await sleep(300);
      streams.forEach((s, i) => assertExactlyOnce(s, 1, 30, `stream ${i}`));
      assert.equal(hubAttaches(logs) - attachesBefore, 1, 'one socket for all 40 streams');
      closeAll(streams.slice(0, 15));
      await eventually(async () => (await channelStats(worker.url, channel)).streams === 25 || (await channelStats(worker.url, channel)), 10_000, '25 streams counted');
    } finally {
      closeAll(streams);
    }
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 0 || (await channelStats(worker.url, channel)), 10_000, 'no streams counted');
  });

  test('streams that open at once join in a few requests: each gets the current state and every event once, and a revoked one among them is refused', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const alice = await subscriber(tenant, { sub: 'alice' });
    const bob = await subscriber(tenant, { sub: 'bob' });
    const pub = await publisher(tenant);
    const state = await publish(worker.url, pub, { events: [{ channel, event: 'status.changed', data: { v: 1 } }] });
    assert.equal(state.status, 202, state.text);
    const first = subscribe(worker.url, [channel], { token: bob, types: ['status.changed', 'tick.sent'] });
    await first.opened();
    const kick = await fetch(new URL('/v1/admin/kick', worker.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ tenant, user: 'alice', ttl_seconds: 60 }),
    });
    assert.equal(kick.status, 200, await kick.text());
    const from = logs.lines.length;
    const streams = Array.from({ length: 48 }, () => subscribe(worker.url, [channel], { token: bob, types: ['status.changed', 'tick.sent'] }));
    const refused = Array.from({ length: 6 }, () =>
      fetch(streamUrl(worker.url, [channel]), { headers: { Authorization: `Bearer ${alice}` } }).then(async (res) => ({ status: res.status, body: await res.text() })),
    );
    try {
      for (const res of await Promise.all(refused)) {
        assert.equal(res.status, 403, res.body);
        assert.equal(JSON.parse(res.body).code, 'revoked', res.body);
      }
      await Promise.all(streams.map((s) => s.opened()));
      await publishEach(worker.url, pub, channel, 10);
      await Promise.all([first, ...streams].map((s) => s.waitForData(11, 15_000)));
      await sleep(300);
      [first, ...streams].forEach((s, i) => {
        const seqs = s.data().map((e) => `${e.type} ${seqOf(e.id)}`);
        const want = ['status.changed 1', ...Array.from({ length: 10 }, (_, k) => `tick.sent ${k + 2}`)];
        assert.deepEqual(seqs, want, `stream ${i}: ${JSON.stringify(seqs)}`);
      });
      const joins = hubJoins(logs, from);
      const sum = (key) => joins.reduce((n, j) => n + j[key], 0);
      assert.equal(sum('streams'), 48, JSON.stringify(joins));
      assert.equal(sum('refused'), 6, JSON.stringify(joins));
      assert.ok(joins.length <= 27, `54 streams in ${joins.length} joins: ${JSON.stringify(joins.map((j) => [j.streams, j.refused]))}`);
    } finally {
      first.close();
      closeAll(streams);
    }
  });

  test('clients that go away while their streams open: every stream that stays gets every event once, and the ones that went stop being counted', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    // Gone at every point of an open: before the token check, while waiting
    // for a join, while its own join is in flight, and just after. workerd
    // cancels the request of one whose response could not be delivered, so
    // its hub member is swept by the owner (hub.js) rather than leaving.
    const gone = Array.from({ length: 24 }, async (_, i) => {
      const controller = new AbortController();
      const res = fetch(streamUrl(worker.url, [channel]), { headers: { Authorization: `Bearer ${tok}` }, signal: controller.signal });
      setTimeout(() => controller.abort(), i);
      await res.then((r) => r.body?.cancel()).catch(() => {});
    });
    const streams = Array.from({ length: 24 }, () => subscribe(worker.url, [channel], { token: tok, types: ['tick.sent'] }));
    try {
      await Promise.all(gone);
      await Promise.all(streams.map((s) => s.opened()));
      const last = await publishEach(worker.url, pub, channel, 10);
      assert.equal(last, 10);
      await Promise.all(streams.map((s) => s.waitForData(10, 15_000)));
      await sleep(300);
      streams.forEach((s, i) => assertExactlyOnce(s, 1, 10, `stream ${i}`));
      await eventually(async () => (await channelStats(worker.url, channel)).streams === 24 || (await channelStats(worker.url, channel)), 10_000, 'the streams that stayed counted');
    } finally {
      closeAll(streams);
    }
  });

  test('a stream that starts a hub is counted as soon as it is open, before the hub attaches its socket', async () => {
    const tenant = newTenant();
    const tok = await subscriber(tenant);
    for (let i = 0; i < 5; i++) {
      const channel = channelOf(tenant);
      const first = subscribe(worker.url, [channel], { token: tok });
      try {
        await first.opened();
        assert.equal((await channelStats(worker.url, channel)).streams, 1, `channel ${i}: the first stream`);
        const second = subscribe(worker.url, [channel], { token: tok });
        await second.opened();
        assert.equal((await channelStats(worker.url, channel)).streams, 2, `channel ${i}: the second stream`);
        second.close();
      } finally {
        first.close();
      }
    }
  });

  test('the owner ends while events flow: the socket changes hands and no other stream sees a gap or a repeat', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    const owner = subscribe(worker.url, [channel], { token: tok, types: ['tick.sent'] });
    await owner.opened();
    const attachesBefore = hubAttaches(logs);
    const others = Array.from({ length: 12 }, () => subscribe(worker.url, [channel], { token: tok, types: ['tick.sent'] }));
    try {
      await Promise.all(others.map((s) => s.opened()));
      await publishEach(worker.url, pub, channel, 60, 5, (i) => {
        if (i === 20) owner.close();
      });
      await Promise.all(others.map((s) => s.waitForData(60, 15_000)));
      await sleep(300);
      others.forEach((s, i) => assertExactlyOnce(s, 1, 60, `stream ${i}`));
      assert.ok(hubAttaches(logs) - attachesBefore >= 1, 'another stream attached the socket');
    } finally {
      owner.close();
      closeAll(others);
    }
  });

  test('the owner is kicked: it ends as kicked, the others go on with every event once', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const alice = await subscriber(tenant, { sub: 'alice' });
    const bob = await subscriber(tenant, { sub: 'bob' });
    const pub = await publisher(tenant);
    const owner = subscribe(worker.url, [channel], { token: alice, types: ['tick.sent'] });
    await owner.opened();
    const others = Array.from({ length: 8 }, () => subscribe(worker.url, [channel], { token: bob, types: ['tick.sent'] }));
    try {
      await Promise.all(others.map((s) => s.opened()));
      await publishEach(worker.url, pub, channel, 30, 5, async (i) => {
        if (i !== 10) return;
        const res = await fetch(new URL('/v1/admin/kick', worker.url), {
          method: 'POST',
          headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ tenant, user: 'alice', ttl_seconds: 60 }),
        });
        const text = await res.text();
        assert.equal(res.status, 200, text);
        // The hub answers the object how many of its streams it ended.
        assert.equal(JSON.parse(text).closed, 1, text);
      });
      await owner.until(() => owner.events.some((e) => e.type === 'stream-error'), 10_000, 'the owner kicked');
      assert.equal(JSON.parse(owner.events.find((e) => e.type === 'stream-error').data).code, 'kicked');
      await Promise.all(others.map((s) => s.waitForData(30, 15_000)));
      await sleep(300);
      others.forEach((s, i) => assertExactlyOnce(s, 1, 30, `stream ${i}`));
    } finally {
      owner.close();
      closeAll(others);
    }
  });

  test('the owner stops reading: it alone is cut as lagging, the others get every event once', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    // A raw client that sends its request and then reads nothing: first in,
    // so it owns the hub.
    const stalled = await stalledStream(worker.url, [channel], tok);
    await eventually(async () => (await channelStats(worker.url, channel)).streams === 1 || (await channelStats(worker.url, channel)), 10_000, 'the owner counted');
    const attachesBefore = hubAttaches(logs);
    const others = Array.from({ length: 5 }, () => subscribe(worker.url, [channel], { token: tok, types: ['blob.sent'] }));
    try {
      await Promise.all(others.map((s) => s.opened()));
      const blob = 'x'.repeat(1800);
      let published = 0;
      for (let batch = 0; batch < 40; batch++) {
        const events = Array.from({ length: 100 }, () => ({ channel, event: 'blob.sent', data: { n: ++published, blob } }));
        const res = await publish(worker.url, pub, { events });
        assert.equal(res.status, 202, res.text);
      }
      await Promise.all(others.map((s) => s.waitForData(published, 30_000)));
      await sleep(300);
      others.forEach((s, i) => assertExactlyOnce(s, 1, published, `stream ${i}`));
      await eventually(async () => (await channelStats(worker.url, channel)).streams === 5 || (await channelStats(worker.url, channel)), 15_000, 'the lagging owner released');
      assert.ok(hubAttaches(logs) - attachesBefore >= 1, 'another stream attached the socket');
      stalled.resume();
      await eventually(() => stalled.text().includes('"code":"lagging"'), 15_000, 'the owner told it lags');
    } finally {
      stalled.destroy();
      closeAll(others);
    }
  });

  test('a stream that joins late with a cursor catches up from history, then goes live with the others', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    const early = Array.from({ length: 4 }, () => subscribe(worker.url, [channel], { token: tok, types: ['tick.sent'] }));
    try {
      await Promise.all(early.map((s) => s.opened()));
      await publishEach(worker.url, pub, channel, 20);
      const late = subscribe(worker.url, [channel], { token: tok, types: ['tick.sent'], query: { lastEventId: `${encodeURIComponent(channel)}:5` } });
      early.push(late);
      await late.opened();
      await publishEach(worker.url, pub, channel, 10);
      await Promise.all(early.map((s) => s.waitForData(late === s ? 25 : 30, 15_000)));
      await sleep(300);
      early.slice(0, 4).forEach((s, i) => assertExactlyOnce(s, 1, 30, `stream ${i}`));
      assertExactlyOnce(late, 6, 30, 'the late stream');
    } finally {
      closeAll(early);
    }
  });

  test('the object restarts under the hub: its owner attaches again from where the hub was, no gap, no repeat', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    const streams = Array.from({ length: 10 }, () => subscribe(worker.url, [channel], { token: tok, types: ['tick.sent'] }));
    try {
      await Promise.all(streams.map((s) => s.opened()));
      await publishEach(worker.url, pub, channel, 10);
      await Promise.all(streams.map((s) => s.waitForData(10, 10_000)));
      const attachesBefore = hubAttaches(logs);
      await worker.resetChannel(channel);
      await publishEach(worker.url, pub, channel, 20, 10);
      await Promise.all(streams.map((s) => s.waitForData(30, 15_000)));
      await sleep(300);
      streams.forEach((s, i) => assertExactlyOnce(s, 1, 30, `stream ${i}`));
      assert.ok(hubAttaches(logs) - attachesBefore >= 1, 'the hub attached again');
      streams.forEach((s, i) => assert.equal(s.connections.length, 1, `stream ${i} kept its connection`));
    } finally {
      closeAll(streams);
    }
  });
});

describe('hub with a small dispatch budget', () => {
  const logs = logCollector();
  let worker;
  before(async () => {
    worker = await startWorker({
      vars: { HUB_DISPATCH_BUDGET: '50', KEEPALIVE_SECONDS: '1', RETRY_MS: '100' },
      handleStructuredLogs: logs.handleStructuredLogs,
    });
  });
  after(() => worker.stop());

  test('owners hand the socket on after their budget, again and again, under load: every stream gets every event once', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tok = await subscriber(tenant);
    const pub = await publisher(tenant);
    const streams = Array.from({ length: 10 }, () => subscribe(worker.url, [channel], { token: tok, types: ['tick.sent'] }));
    try {
      await Promise.all(streams.map((s) => s.opened()));
      const attachesBefore = hubAttaches(logs);
      await publishEach(worker.url, pub, channel, 80, 3);
      await Promise.all(streams.map((s) => s.waitForData(80, 20_000)));
      await sleep(300);
      streams.forEach((s, i) => assertExactlyOnce(s, 1, 80, `stream ${i}`));
      // 80 events × 10 streams is 800 wakes: a new owner every 50 or so.
      assert.ok(hubAttaches(logs) - attachesBefore >= 5, `handovers: ${hubAttaches(logs) - attachesBefore}`);
    } finally {
      closeAll(streams);
    }
  });
});
