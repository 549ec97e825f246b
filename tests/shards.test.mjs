// Sharded fan-out and streams that outlive their objects, in workerd.
//
// With SHARD_SUBSCRIBERS at 10, a channel's object keeps 10 streams itself and
// places the rest on shard objects, so a few dozen streams exercise what a
// channel of hundreds of thousands does in production. `POST /dev/reset`
// resets a channel's object and its shards as a deploy or an eviction does
// (memory and sockets gone, storage kept): streams must re-attach by
// themselves and go on without a gap, a duplicate or a reconnect.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './support/worker.mjs';
import { rawStream, eventsOf, channelStats } from './support/http.mjs';
import { streamUrl, publish } from './support/sse.mjs';
import { token, subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';

const SHARD_SUBSCRIBERS = 10;

/** The channel's sequence number of an event id (`<channel>:<seq>`). */
const seqOf = (id) => Number(id.slice(id.lastIndexOf(':') + 1));

/** Opens `count` raw streams, a few at a time (each one's open is a set-up). */
async function openStreams(base, channel, count, tokenFor) {
  const streams = [];
  for (let i = 0; i < count; i += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, count - i) }, async (_, j) => {
        const s = await rawStream(streamUrl(base, [channel]), {
          headers: { Authorization: `Bearer ${await tokenFor(i + j)}` },
        });
        assert.equal(s.res.status, 200);
        await s.opened();
        return s;
      }),
    );
    streams.push(...batch);
  }
  return streams;
}

/**
 * Every stream got events 0..count-1 (by data) exactly once, in order, with
 * ids stepping by one from `firstSeq`, and nothing else but the stream's own
 * relay events.
 */
function assertEveryEventOnce(streams, count, firstSeq) {
  for (const [i, s] of streams.entries()) {
    const events = eventsOf(s.text).filter((e) => e.event === 'x.n');
    assert.deepEqual(
      events.map((e) => JSON.parse(e.data)),
      Array.from({ length: count }, (_, n) => n),
      `stream ${i}: events by data`,
    );
    assert.deepEqual(
      events.map((e) => seqOf(e.id)),
      Array.from({ length: count }, (_, n) => firstSeq + n),
      `stream ${i}: ids step by one`,
    );
    assert.equal(eventsOf(s.text).filter((e) => e.event === 'stream-error').length, 0, `stream ${i}: no stream-error`);
    assert.equal(eventsOf(s.text).filter((e) => e.event === 'stream-reset').length, 0, `stream ${i}: no stream-reset`);
    assert.equal(eventsOf(s.text).filter((e) => e.event === 'stream-open').length, 1, `stream ${i}: opened once`);
  }
}

/** Waits until every stream has `count` events; on a timeout, says which streams are short and how. */
async function waitForAll(streams, count, ms = 60_000) {
  const results = await Promise.allSettled(streams.map((s) => s.until(gotAll(count), ms, `${count} events`)));
  const short = results.flatMap((r, i) => {
    if (r.status === 'fulfilled') return [];
    const events = eventsOf(streams[i].text);
    return [`stream ${i}: ${events.filter((e) => e.event === 'x.n').length} events, ended ${streams[i].ended}, last ${JSON.stringify(streams[i].text.slice(-300))}`];
  });
  assert.deepEqual(short, [], `${short.length} of ${streams.length} streams short`);
}

const gotAll = (count) => (text) => eventsOf(text).filter((e) => e.event === 'x.n').length >= count;

async function eventually(check, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Publishes event `n` until the relay acknowledges it; a retry reuses the idempotency key. */
async function publishAcknowledged(base, pub, channel, n) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const r = await publish(base, pub, { channel, event: 'x.n', data: n, idempotency_key: `n-${n}` }).catch((e) => ({ status: 0, text: String(e) }));
    if (r.status === 202) return r.body.results[0].id;
    assert.ok(r.status === 503 || r.status === 0, `publish ${n}: ${r.status} ${r.text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`publish ${n} was never acknowledged`);
}

describe('sharded fan-out', () => {
  let worker;
  before(async () => {
    // Shards hold streams that have sockets of their own: the hub is off.
    worker = await startWorker({
      vars: { SHARD_SUBSCRIBERS: String(SHARD_SUBSCRIBERS), DEV_MODE: '1', RETRY_MS: '100', KEEPALIVE_SECONDS: '2', HUB_DISPATCH_BUDGET: '0' },
    });
  });
  after(() => worker.stop());

  test('150 streams over 15 objects: every event once, in order, ids stepping by one; stats count every stream; a late stream on a shard gets the current state', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const streams = await openStreams(worker.url, channel, 150, () => subscriber(tenant));
    try {
      assert.equal((await channelStats(worker.url, channel)).streams, 150);
      for (let batch = 0; batch < 6; batch++) {
        const events = Array.from({ length: 5 }, (_, i) => ({ channel, event: 'x.n', data: batch * 5 + i }));
        const r = await publish(worker.url, pub, { events });
        assert.equal(r.status, 202, r.text);
      }
      await Promise.all(streams.map((s) => s.until(gotAll(30), 30_000, '30 events')));
      assertEveryEventOnce(streams, 30, 1);
      // A new stream lands on a shard and opens with the current state, as it
      // would on the channel's own object: the latest event of each type.
      const late = await rawStream(streamUrl(worker.url, [channel]), { headers: { Authorization: `Bearer ${await subscriber(tenant)}` } });
      try {
        await late.until(gotAll(1), 10_000, 'the current state');
        const state = eventsOf(late.text).filter((e) => e.event === 'x.n');
        assert.deepEqual(state.map((e) => [seqOf(e.id), JSON.parse(e.data)]), [[30, 29]]);
        assert.equal((await channelStats(worker.url, channel)).streams, 151);
      } finally {
        await late.close();
      }
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
  });

  test("a kick reaches the user's streams on every shard, and the others still get later events", async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    // Every third stream is alice's, so hers are on the channel and on shards.
    const streams = await openStreams(worker.url, channel, 45, (i) => subscriber(tenant, { sub: i % 3 === 0 ? 'alice' : `bob-${i}` }));
    const alice = streams.filter((_, i) => i % 3 === 0);
    const others = streams.filter((_, i) => i % 3 !== 0);
    try {
      const admin = await token({ scope: 'events:admin events:platform' });
      const res = await fetch(new URL('/v1/admin/kick', worker.url), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${admin}` },
        body: JSON.stringify({ tenant, user: 'alice', ttl_seconds: 60 }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal((await res.json()).closed, alice.length);
      await Promise.all(alice.map((s) => s.end(15_000)));
      for (const s of alice) {
        const error = eventsOf(s.text).find((e) => e.event === 'stream-error');
        assert.equal(JSON.parse(error.data).code, 'kicked');
      }
      assert.equal((await publish(worker.url, pub, { channel, event: 'x.n', data: 0 })).status, 202);
      await Promise.all(others.map((s) => s.until(gotAll(1), 15_000, 'the event after the kick')));
      assertEveryEventOnce(others, 1, 1);
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
  });

  test('the channel object and its shards reset under load: every stream goes on without a gap, a duplicate or a reconnect', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const streams = await openStreams(worker.url, channel, 40, () => subscriber(tenant));
    // One client leaves before the reset and resumes after it.
    const leaver = await rawStream(streamUrl(worker.url, [channel]), { headers: { Authorization: `Bearer ${await subscriber(tenant)}` } });
    await leaver.opened();
    const resets = [];
    try {
      let lastId;
      for (let n = 0; n < 60; n++) {
        const id = await publishAcknowledged(worker.url, pub, channel, n);
        if (n === 9) {
          await leaver.until(gotAll(10), 15_000, 'the leaver got 10 events');
          await leaver.close();
          lastId = eventsOf(leaver.text).filter((e) => e.event === 'x.n').at(-1).id;
        }
        // Six resets, each while the last one's streams may still be
        // re-attaching to the channel and to shards that restarted or were
        // retired meanwhile.
        if (n % 10 === 5) resets.push(await devReset(worker.url, channel));
        assert.ok(id > 0);
      }
      assert.deepEqual(resets, [204, 204, 204, 204, 204, 204]);
      await waitForAll(streams, 60);
      assertEveryEventOnce(streams, 60, 1);
      for (const s of streams) assert.equal(s.ended, false, 'the stream is still open');
      const resumed = await rawStream(streamUrl(worker.url, [channel]), {
        headers: { Authorization: `Bearer ${await subscriber(tenant)}`, 'Last-Event-ID': lastId },
      });
      try {
        await resumed.until(gotAll(50), 30_000, 'the resumed stream got the 50 it missed');
        assert.deepEqual(
          eventsOf(resumed.text).filter((e) => e.event === 'x.n').map((e) => JSON.parse(e.data)),
          Array.from({ length: 50 }, (_, i) => i + 10),
        );
      } finally {
        await resumed.close();
      }
      // A stream whose client left is released when the Worker notices: at
      // once from the abort signal, or at the latest from a failed keep-alive.
      let counted;
      await eventually(async () => (counted = (await channelStats(worker.url, channel)).streams) === 40, 'the 40 open streams counted').catch((e) => assert.fail(`${e.message}: ${counted}`));
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
  });

  test('/dev/reset is a development route: JSON only, and a valid channel', async () => {
    const post = (body, type = 'application/json') =>
      fetch(new URL('/dev/reset', worker.url), { method: 'POST', headers: { 'Content-Type': type }, body });
    assert.equal((await post(JSON.stringify({ channel: 'nope' }))).status, 400);
    assert.equal((await post('{}')).status, 400);
    assert.equal((await post(JSON.stringify({ channel: channelOf(newTenant()) }), 'text/plain')).status, 415);
    assert.equal((await fetch(new URL('/dev/reset', worker.url))).status, 405);
  });
});

async function devReset(base, channel) {
  const res = await fetch(new URL('/dev/reset', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel }),
  });
  await res.arrayBuffer();
  return res.status;
}
