// Resume without loss: Last-Event-ID replay from the channel's SQLite history,
// stream-reset when history cannot honour a cursor, current state on connect,
// and restarts of the whole runtime on persisted state.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startWorker, useWorker } from './support/worker.mjs';
import { subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish, readRaw, streamUrl } from './support/sse.mjs';
import { channelStats, cursorOf } from './support/http.mjs';

const FAST_RETRY = { RETRY_MS: '100' };

async function publishN(base, token, channel, from, to, type = 'scan.progress') {
  const events = [];
  for (let i = from; i <= to; i++) events.push({ channel, event: type, data: { n: i } });
  for (let i = 0; i < events.length; i += 100) {
    const res = await publish(base, token, { events: events.slice(i, i + 100) });
    assert.equal(res.status, 202, res.text);
  }
}

const seqOf = (id, channel) => {
  const pair = id.split(',').find((p) => decodeURIComponent(p.slice(0, p.lastIndexOf(':'))) === channel);
  return pair ? Number(pair.slice(pair.lastIndexOf(':') + 1)) : undefined;
};
const numbers = (s) => s.data().map((e) => JSON.parse(e.data).n);

/** A subscriber of `channel` that resumes after sequence number `seq`. */
const resumeAt = async (worker, tenant, channel, seq) =>
  subscribe(worker.url, [channel], {
    token: await subscriber(tenant),
    types: ['scan.progress'],
    query: { lastEventId: `${encodeURIComponent(channel)}:${seq}` },
  });

describe('resume from history', () => {
  const worker = useWorker({ vars: FAST_RETRY });

  test('a client that drops reconnects with Last-Event-ID and misses nothing', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const s = subscribe(worker.url, [channel], { token: await subscriber(tenant), types: ['scan.progress'] });
    try {
      await s.opened();
      await publishN(worker.url, pub, channel, 1, 5);
      await s.waitForData(5);
      s.drop();
      // Published while the client is away.
      await publishN(worker.url, pub, channel, 6, 10);
      await s.waitForData(10);
      assert.deepEqual(numbers(s), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(s.connections.length, 2);
      assert.equal(seqOf(s.connections[1].lastEventId, channel), 5);
      assert.deepEqual(
        s.data().map((e) => seqOf(e.id, channel)),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
    } finally {
      s.close();
    }
  });

  test('lastEventId in the query resumes too, and the header wins over it', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    await publishN(worker.url, await publisher(tenant), channel, 1, 6);
    const token = await subscriber(tenant);
    const id = (n) => `${encodeURIComponent(channel)}:${n}`;
    const read = async (query, headers) => {
      const { text } = await readRaw(streamUrl(worker.url, [channel], query), {
        headers: { Authorization: `Bearer ${token}`, ...headers },
        done: (t) => t.includes('"n":6'),
      });
      return [...text.matchAll(/"n":(\d+)/g)].map((m) => Number(m[1]));
    };
    assert.deepEqual(await read({ lastEventId: id(3) }), [4, 5, 6]);
    assert.deepEqual(await read({ lastEventId: id(1) }, { 'Last-Event-ID': id(4) }), [5, 6]);
  });

  test('a malformed cursor is 400 invalid_cursor', async () => {
    const tenant = newTenant();
    const res = await fetch(streamUrl(worker.url, [channelOf(tenant)], { lastEventId: 'no-sequence' }), {
      headers: { Authorization: `Bearer ${await subscriber(tenant)}` },
    });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, 'invalid_cursor');
  });

  test('20 clients resuming at random points while 500 events are published each end with 1..N exactly', async (t) => {
    // Seeded, so that a failure can be replayed.
    const seed = Number(process.env.EDGESTREAM_RESUME_SEED ?? Date.now() % 100_000);
    t.diagnostic(`resume seed ${seed} (EDGESTREAM_RESUME_SEED=${seed} replays it)`);
    let state = seed;
    const random = () => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const token = await subscriber(tenant);
    await publishN(worker.url, pub, channel, 1, 100);
    const clients = [];
    const publishing = (async () => {
      for (let i = 101; i <= 500; i += 20) await publishN(worker.url, pub, channel, i, i + 19);
    })();
    for (let c = 0; c < 20; c++) {
      const from = Math.floor(random() * 100);
      const query = from ? { lastEventId: `${encodeURIComponent(channel)}:${from}` } : {};
      // A cursor of 0 would be "no cursor": current state, not replay; use 1.
      clients.push({ from: from || 1, s: subscribe(worker.url, [channel], { token, types: ['scan.progress'], query: from ? query : { lastEventId: `${encodeURIComponent(channel)}:1` } }) });
      await new Promise((r) => setTimeout(r, 10));
    }
    t.diagnostic(`resume points: ${clients.map((c) => c.from).join(', ')}`);
    try {
      await publishing;
      for (const { from, s } of clients) {
        await s.waitForData(500 - from, 20_000);
        const expected = Array.from({ length: 500 - from }, (_, i) => from + 1 + i);
        assert.deepEqual(numbers(s), expected);
      }
    } finally {
      for (const { s } of clients) s.close();
    }
  });
});

describe('current state on connect', () => {
  const worker = useWorker({ vars: FAST_RETRY });

  test('a late client first gets the latest event of each type, with real ids, then live events', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    await publishN(worker.url, pub, channel, 1, 3, 'scan.progress');
    await publishN(worker.url, pub, channel, 4, 4, 'scan.started');
    await publishN(worker.url, pub, channel, 5, 6, 'scan.progress');
    const s = subscribe(worker.url, [channel], {
      token: await subscriber(tenant),
      types: ['scan.progress', 'scan.started', 'scan.completed'],
    });
    try {
      await s.waitForData(2);
      assert.deepEqual(
        s.data().map((e) => [e.type, JSON.parse(e.data).n, seqOf(e.id, channel)]),
        [
          ['scan.started', 4, 4],
          ['scan.progress', 6, 6],
        ],
      );
      await publishN(worker.url, pub, channel, 7, 7, 'scan.completed');
      await s.waitForData(3);
      assert.deepEqual(s.data()[2].type, 'scan.completed');
      assert.equal(seqOf(s.data()[2].id, channel), 7);
    } finally {
      s.close();
    }
  });

  test('an empty channel still appears in the ids of a multi-channel stream', async () => {
    const tenant = newTenant();
    const busy = channelOf(tenant, 'busy');
    const quiet = channelOf(tenant, 'quiet');
    const s = subscribe(worker.url, [busy, quiet], { token: await subscriber(tenant), types: ['scan.progress'] });
    try {
      await s.opened();
      await publishN(worker.url, await publisher(tenant), busy, 1, 1);
      await s.waitForData(1);
      const id = s.data()[0].id;
      assert.equal(seqOf(id, busy), 1);
      assert.equal(seqOf(id, quiet), 0);
    } finally {
      s.close();
    }
  });
});

describe('bounded history', () => {
  const worker = useWorker({ vars: { ...FAST_RETRY, HISTORY_SIZE: '5' } });

  test('a cursor older than history gets stream-reset, then the current state, then live events', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    await publishN(worker.url, pub, channel, 1, 12);
    const s = await resumeAt(worker, tenant, channel, 2);
    try {
      await s.waitForData(1);
      const types = s.events.map((e) => e.type);
      assert.deepEqual(types.slice(0, 3), ['stream-open', 'stream-reset', 'scan.progress']);
      assert.deepEqual(JSON.parse(s.events[1].data), { channels: [channel] });
      assert.equal(JSON.parse(s.data()[0].data).n, 12);
      assert.equal(seqOf(s.data()[0].id, channel), 12);
      await publishN(worker.url, pub, channel, 13, 13);
      await s.waitForData(2);
      assert.equal(seqOf(s.data()[1].id, channel), 13);
    } finally {
      s.close();
    }
  });

  test('a cursor inside the retained window replays without a reset', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    await publishN(worker.url, await publisher(tenant), channel, 1, 12);
    const s = await resumeAt(worker, tenant, channel, 7);
    try {
      await s.waitForData(5);
      assert.deepEqual(numbers(s), [8, 9, 10, 11, 12]);
      assert.ok(!s.events.some((e) => e.type === 'stream-reset'));
    } finally {
      s.close();
    }
  });

  test('a cursor ahead of the channel (storage reset) gets stream-reset', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    await publishN(worker.url, await publisher(tenant), channel, 1, 2);
    const s = await resumeAt(worker, tenant, channel, 40);
    try {
      await s.until(() => s.events.some((e) => e.type === 'stream-reset'));
      await s.waitForData(1);
      assert.equal(seqOf(s.data()[0].id, channel), 2);
    } finally {
      s.close();
    }
  });
});

describe('multi-channel resume', () => {
  const worker = useWorker({ vars: { ...FAST_RETRY, HISTORY_SIZE: '5' } });

  test('one cursor over three channels: one inside history, one older than it, one ahead of its channel', async () => {
    const tenant = newTenant();
    const [inside, older, ahead] = ['inside', 'older', 'ahead'].map((r) => channelOf(tenant, r));
    const pub = await publisher(tenant);
    const fill = async (channel, count) => {
      const events = Array.from({ length: count }, (_, i) => ({ channel, event: 'scan.progress', data: { n: i + 1, channel } }));
      assert.equal((await publish(worker.url, pub, { events })).status, 202);
    };
    await fill(inside, 8); // history keeps 4..8
    await fill(older, 12); // history keeps 8..12
    await fill(ahead, 2);
    const s = subscribe(worker.url, [inside, older, ahead], {
      token: await subscriber(tenant),
      types: ['scan.progress'],
      query: { lastEventId: cursorOf([[inside, 5], [older, 2], [ahead, 40]]) },
    });
    try {
      // The replay of `inside` and the current state of the two others.
      await s.waitForData(3 + 1 + 1);
      const resets = s.events.filter((e) => e.type === 'stream-reset').map((e) => JSON.parse(e.data).channels);
      assert.deepEqual(resets.flat().sort(), [older, ahead].sort(), `each channel whose position is not in history is reset once: ${JSON.stringify(resets)}`);
      assert.ok(resets.every((list) => list.length >= 1));
      const byChannel = (c) => s.data().filter((e) => JSON.parse(e.data).channel === c).map((e) => JSON.parse(e.data).n);
      assert.deepEqual(byChannel(inside), [6, 7, 8], 'replayed after its position, no gap');
      assert.deepEqual(byChannel(older), [12], 'the current state');
      assert.deepEqual(byChannel(ahead), [2], 'the current state');
      // Live events go on from there, and every id carries all three positions.
      for (const [i, c] of [inside, older, ahead].entries()) {
        const res = await publish(worker.url, pub, { channel: c, event: 'scan.progress', data: { n: 100 + i, channel: `live-${i}` } });
        assert.equal(res.status, 202, res.text);
        await s.waitForData(6 + i);
      }
      assert.deepEqual(s.data().slice(-3).map((e) => e.id), [
        cursorOf([[inside, 9], [older, 12], [ahead, 2]]),
        cursorOf([[inside, 9], [older, 13], [ahead, 2]]),
        cursorOf([[inside, 9], [older, 13], [ahead, 3]]),
      ]);
      assert.equal(s.events.filter((e) => e.type === 'stream-reset').length, resets.length, 'no reset after the first events');
    } finally {
      s.close();
    }
  });
});

describe('idempotent publishing', () => {
  const worker = useWorker();

  test('a repeated idempotency_key returns the original id and is delivered once', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const s = subscribe(worker.url, [channel], { token: await subscriber(tenant), types: ['scan.progress'] });
    try {
      await s.opened();
      const event = { channel, event: 'scan.progress', data: { n: 1 }, idempotency_key: 'job-1:step-1' };
      const first = await publish(worker.url, pub, event);
      const again = await publish(worker.url, pub, event);
      const batch = await publish(worker.url, pub, {
        events: [event, { ...event, idempotency_key: 'job-1:step-2', data: { n: 2 } }],
      });
      assert.deepEqual(first.body.results, [{ channel, id: 1, duplicate: false }]);
      assert.deepEqual(again.body.results, [{ channel, id: 1, duplicate: true }]);
      assert.deepEqual(batch.body.results, [
        { channel, id: 1, duplicate: true },
        { channel, id: 2, duplicate: false },
      ]);
      await s.waitForData(2);
      await publishN(worker.url, pub, channel, 3, 3);
      await s.waitForData(3);
      assert.deepEqual(numbers(s), [1, 2, 3]);
    } finally {
      s.close();
    }
  });

  test('the same key on another channel is a different event', async () => {
    const tenant = newTenant();
    const pub = await publisher(tenant);
    const a = await publish(worker.url, pub, { channel: channelOf(tenant, 'a'), event: 'x.y', data: 1, idempotency_key: 'k' });
    const b = await publish(worker.url, pub, { channel: channelOf(tenant, 'b'), event: 'x.y', data: 1, idempotency_key: 'k' });
    assert.equal(a.body.results[0].duplicate, false);
    assert.equal(b.body.results[0].duplicate, false);
  });
});

describe('idempotency keys expire with their event', () => {
  const worker = useWorker({ vars: { HISTORY_TTL_SECONDS: '1' } });

  test('after HISTORY_TTL_SECONDS a repeated key is a new event', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const event = { channel, event: 'scan.progress', data: { n: 1 }, idempotency_key: 'job-9:step-1' };
    assert.deepEqual((await publish(worker.url, pub, event)).body.results, [{ channel, id: 1, duplicate: false }]);
    assert.deepEqual((await publish(worker.url, pub, event)).body.results, [{ channel, id: 1, duplicate: true }]);
    // The key is kept at least as long as its event, and forgotten with it
    // when the TTL sweep (an alarm a moment after the event expires) drops
    // the expired history: until then a resend is still a duplicate.
    const deadline = Date.now() + 15_000;
    let resent;
    for (;;) {
      resent = (await publish(worker.url, pub, event)).body.results;
      if (!resent[0].duplicate) break;
      assert.deepEqual(resent, [{ channel, id: 1, duplicate: true }]);
      assert.ok(Date.now() < deadline, 'the key outlived its event by 15 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(resent, [{ channel, id: 2, duplicate: false }]);
    assert.deepEqual((await publish(worker.url, pub, event)).body.results, [{ channel, id: 2, duplicate: true }]);
  });
});

describe('restart on persisted state', () => {
  let dir;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'edgestream-state-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a client receives every event exactly once across a runtime restart', async () => {
    let worker = await startWorker({ vars: FAST_RETRY, persistPath: dir });
    const port = new URL(worker.url).port;
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const s = subscribe(worker.url, [channel], { token: await subscriber(tenant), types: ['scan.progress'] });
    try {
      await s.opened();
      await publishN(worker.url, pub, channel, 1, 20);
      await s.waitForData(20);
      await worker.stop();
      // The objects are gone; their SQLite history is not.
      worker = await startWorker({ vars: FAST_RETRY, persistPath: dir, port: Number(port) });
      await publishN(worker.url, pub, channel, 21, 40);
      await s.waitForData(40, 20_000);
      assert.deepEqual(numbers(s), Array.from({ length: 40 }, (_, i) => i + 1));
      assert.ok(s.connections.length >= 2);
      assert.equal(seqOf(s.connections.at(-1).lastEventId, channel), 20);
    } finally {
      s.close();
      await worker.stop();
    }
  });

  test('an idempotency key holds across a runtime restart', async () => {
    let worker = await startWorker({ persistPath: dir });
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const event = { channel, event: 'scan.progress', data: { n: 1 }, idempotency_key: 'job-3:step-1' };
    try {
      assert.deepEqual((await publish(worker.url, pub, event)).body.results, [{ channel, id: 1, duplicate: false }]);
      await worker.stop();
      worker = await startWorker({ persistPath: dir });
      // A subscriber that has event 1 sees what the resend delivers.
      const s = await resumeAt(worker, tenant, channel, 1);
      try {
        await s.opened();
        const again = await publish(worker.url, pub, { events: [event, { ...event, idempotency_key: 'job-3:step-2', data: { n: 2 } }] });
        assert.deepEqual(again.body.results, [
          { channel, id: 1, duplicate: true },
          { channel, id: 2, duplicate: false },
        ]);
        await publishN(worker.url, pub, channel, 3, 3);
        await s.waitForData(2);
        assert.deepEqual(numbers(s), [2, 3]);
      } finally {
        s.close();
      }
    } finally {
      await worker.stop();
    }
  });

  test('ids go on from the last one after the whole history expired and the runtime restarted', async () => {
    const vars = { HISTORY_TTL_SECONDS: '1' };
    let worker = await startWorker({ vars, persistPath: dir });
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const stats = () => channelStats(worker.url, channel);
    try {
      await publishN(worker.url, pub, channel, 1, 3);
      // The TTL alarm expires every event.
      const deadline = Date.now() + 15_000;
      while ((await stats()).history !== 0) {
        assert.ok(Date.now() < deadline, 'history did not expire');
        await new Promise((r) => setTimeout(r, 200));
      }
      await worker.stop();
      // The sweep (an alarm a second after the events expired) is due while
      // the runtime is down, so it wakes the object on the next start, before
      // any request names it: the object must still know its channel.
      await new Promise((r) => setTimeout(r, 1_500));
      worker = await startWorker({ vars, persistPath: dir });
      await new Promise((r) => setTimeout(r, 500));
      const res = await publish(worker.url, pub, { channel, event: 'scan.progress', data: { n: 4 } });
      assert.equal(res.status, 202, res.text);
      assert.equal(res.body.results[0].id, 4);
    } finally {
      await worker.stop();
    }
  });
});
