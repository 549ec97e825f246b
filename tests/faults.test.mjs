// Injected faults on the relay itself, with exact accounting: every event
// whose publish was acknowledged (202) reaches every subscriber that stays or
// resumes exactly once and in order, and a publish that was not acknowledged
// is retried by the caller with the same idempotency keys and stored once.
// The bridge's own faults (killed with batches in flight, Valkey restarted,
// the edge answering 5xx or timing out) are in tests/bridge*.test.mjs; the
// table in docs/reliability.md names each fault and its test.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish, streamUrl, readRaw } from './support/sse.mjs';
import { channelStats, eventsOf, rawStream } from './support/http.mjs';
import { assertExactlyOnceInOrder } from './support/bridge.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function eventually(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const dirs = [];
const cleanups = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** The sequence number of `channel` in a stream's event id. */
const seqOf = (id, channel) => {
  const pair = id.split(',').find((p) => decodeURIComponent(p.slice(0, p.lastIndexOf(':'))) === channel);
  return pair === undefined ? undefined : Number(pair.slice(pair.lastIndexOf(':') + 1));
};

/**
 * A publisher as an origin should be: each batch carries an idempotency key
 * per event, and a batch that was not acknowledged (the connection failed,
 * timed out or was answered 5xx) is sent again, with the same keys, until it
 * is. Returns what each attempt came to.
 */
function retryingPublisher(url, token) {
  const log = { acknowledged: [], unacknowledged: 0, overloaded: 0 };
  return {
    log,
    async send(events, deadlineMs = 60_000) {
      const deadline = Date.now() + deadlineMs;
      for (;;) {
        try {
          const res = await fetch(new URL('/v1/publish', url()), {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
            body: JSON.stringify({ events }),
            signal: AbortSignal.timeout(10_000),
          });
          const text = await res.text();
          if (res.status === 202) {
            const { results } = JSON.parse(text);
            log.acknowledged.push({ events, results });
            return results;
          }
          // The only answer a caller may retry: the object was unavailable,
          // said as 503 overloaded with a Retry-After.
          assert.equal(res.status, 503, `a publish the caller must not retry: ${res.status} ${text}`);
          assert.equal(JSON.parse(text).code, 'overloaded', text);
          assert.match(res.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/, 'Retry-After on overloaded');
          log.overloaded++;
        } catch (e) {
          if (e.code === 'ERR_ASSERTION') throw e;
        }
        log.unacknowledged++;
        if (Date.now() > deadline) throw new Error('a publish was never acknowledged');
        await sleep(50);
      }
    },
  };
}

test('workerd SIGKILLed twice under load: acknowledged events reach every resuming subscriber once, in order; retried publishes are stored once', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgestream-faults-kill-'));
  dirs.push(dir);
  const vars = { RETRY_MS: '100' };
  const logs = logCollector();
  let worker = await startWorker({ vars, persistPath: dir, handleStructuredLogs: logs.handleStructuredLogs });
  cleanups.push(() => worker.stop().catch(() => {}));
  const port = Number(new URL(worker.url).port);
  const tenant = newTenant();
  const channels = [channelOf(tenant, 'k-0'), channelOf(tenant, 'k-1')];
  const token = await subscriber(tenant);
  // Streams of one channel and of both (a composite cursor to resume from).
  const subs = [[0], [1], [0, 1], [0, 1]].map((cs) => subscribe(worker.url, cs.map((c) => channels[c]), { token, types: ['seq'] }));
  for (const s of subs) cleanups.push(async () => s.close());
  await Promise.all(subs.map((s) => s.opened()));

  const pub = retryingPublisher(() => worker.url, await publisher(tenant));
  const BATCHES = 30;
  const PER_BATCH = 10;
  const kills = [];
  const killAfter = [8, 19];
  const producing = (async () => {
    for (let b = 0; b < BATCHES; b++) {
      const events = [];
      for (let i = 0; i < PER_BATCH; i++) {
        const n = b * PER_BATCH + i;
        channels.forEach((channel, c) => events.push({ channel, event: 'seq', data: { c, n }, idempotency_key: `${c}:${n}` }));
      }
      const sending = pub.send(events);
      const kill = async () => {
        const delivered = subs.map((s) => s.data().length);
        const acknowledged = pub.log.acknowledged.length * PER_BATCH;
        await worker.kill();
        kills.push({ batch: b, delivered, acknowledged });
        await sleep(300);
        worker = await startWorker({ vars, persistPath: dir, port, handleStructuredLogs: logs.handleStructuredLogs });
      };
      // The first kill lands while this batch is on its way: stored or not,
      // the caller has no answer and sends it again. The second lands as
      // soon as the batch is acknowledged: a stream that had not got all of
      // it yet gets the rest from history.
      if (b === killAfter[0]) await kill();
      await sending;
      if (b === killAfter[1]) await kill();
    }
  })();
  await producing;
  const total = BATCHES * PER_BATCH;
  t.diagnostic(`killed at batches ${kills.map((k) => k.batch).join(', ')}; ${pub.log.unacknowledged} publish attempts went unacknowledged and were retried`);
  assert.equal(kills.length, 2);

  // Every acknowledged event got one id, and the ids of a channel are
  // 1..total: an event whose publish was retried was stored once.
  for (const [c, channel] of channels.entries()) {
    const ids = new Map();
    for (const { events, results } of pub.log.acknowledged) {
      events.forEach((e, i) => {
        if (e.channel !== channel) return;
        assert.equal(results[i].channel, channel);
        const seen = ids.get(e.data.n);
        if (seen !== undefined) assert.equal(results[i].id, seen, `${channel} ${e.data.n}: one id across retries`);
        ids.set(e.data.n, results[i].id);
      });
    }
    assert.equal(ids.size, total, `channel ${c}: every event acknowledged`);
    assert.deepEqual([...ids.keys()].map((n) => ids.get(n)), Array.from({ length: total }, (_, i) => i + 1), `channel ${c}: ids 1..${total} in order`);
  }

  const wanted = [total, total, 2 * total, 2 * total];
  await Promise.all(subs.map((s, i) => s.waitForData(wanted[i], 60_000)));
  await sleep(300); // a duplicate would arrive now
  subs.forEach((s, i) => {
    const cs = [[0], [1], [0, 1], [0, 1]][i].map((c) => channels[c]);
    // sequences() reads `c` as an index into the list it is given.
    assertExactlyOnceInOrder(s, channels, total, (channel) => (cs.includes(channel) ? Array.from({ length: total }, (_, n) => n) : []));
    // Each stream resumed after each kill with a Last-Event-ID, never from scratch.
    assert.ok(s.connections.length >= 3, `subscriber ${i}: ${s.connections.length} connections`);
    for (const c of s.connections.slice(1)) assert.ok(c.lastEventId, `subscriber ${i} resumed with Last-Event-ID`);
    assert.ok(!s.events.some((e) => e.type === 'stream-reset'), `subscriber ${i}: history honoured every cursor`);
    // The ids each stream saw go up by one per channel.
    for (const channel of cs) {
      const seqs = s.data().filter((e) => JSON.parse(e.data).c === channels.indexOf(channel)).map((e) => seqOf(e.id, channel));
      assert.deepEqual(seqs, Array.from({ length: total }, (_, n) => n + 1), `subscriber ${i}: ids of ${channel}`);
    }
  });
  for (const k of kills) t.diagnostic(`killed with ${k.acknowledged} events per channel acknowledged; the streams (of one, one, two and two channels) had ${k.delivered.join(', ')}`);

  // A caller that never saw an answer may resend long after, across the
  // restarts: the keys still hold, the original ids come back, nothing is
  // delivered again.
  const early = pub.log.acknowledged[0];
  const again = await publish(worker.url, await publisher(tenant), { events: early.events });
  assert.equal(again.status, 202, again.text);
  assert.deepEqual(again.body.results, early.results.map((r) => ({ ...r, duplicate: true })));
  const marker = await publish(worker.url, await publisher(tenant), { channel: channels[0], event: 'seq', data: { c: 0, n: total } });
  assert.equal(marker.body.results[0].id, total + 1);
  await subs[0].waitForData(total + 1, 10_000);
  assert.deepEqual(subs[0].data().map((e) => JSON.parse(e.data).n), Array.from({ length: total + 1 }, (_, n) => n));
  await worker.stop();
});

test('a channel object reset again and again while publishes and fan-out are under way: streams stay open and miss nothing', async (t) => {
  // workerd's own eviction happens only to an idle object, so it can never
  // land mid-publish; the support's reset does, on one object, without
  // touching the streams' own connections.
  const logs = logCollector();
  const worker = await startWorker({ vars: { RETRY_MS: '100' }, resettable: true, handleStructuredLogs: logs.handleStructuredLogs });
  cleanups.push(() => worker.stop());
  const constructions = () => logs.lines.filter((l) => l.message.includes('"test":"channel-object-constructed"')).length;
  const tenant = newTenant();
  const channels = [channelOf(tenant, 'r-0'), channelOf(tenant, 'r-1')];
  const token = await subscriber(tenant);
  const shapes = [[0], [0], [0, 1], [1]];
  const subs = shapes.map((cs) => subscribe(worker.url, cs.map((c) => channels[c]), { token, types: ['seq'] }));
  for (const s of subs) cleanups.push(async () => s.close());
  await Promise.all(subs.map((s) => s.opened()));

  const BATCHES = 40;
  const PER_BATCH = 10;
  const total = BATCHES * PER_BATCH;
  // One publisher per channel, each with its batches in order; channel 0's
  // object is reset every few of its batches, while they are in flight.
  const pubs = await Promise.all(channels.map(async () => retryingPublisher(() => worker.url, await publisher(tenant))));
  const built = constructions();
  let resets = 0;
  const cutOff = [];
  await Promise.all(channels.map(async (channel, c) => {
    for (let b = 0; b < BATCHES; b++) {
      const events = Array.from({ length: PER_BATCH }, (_, i) => {
        const n = b * PER_BATCH + i;
        return { channel, event: 'seq', data: { c, n }, idempotency_key: `${c}:${n}` };
      });
      // Every eighth batch of channel 0 is cut off by a reset after the
      // object handled it; between those, a reset lands while a batch is
      // on its way.
      if (c === 0 && b % 8 === 0) {
        await worker.resetChannel(channel, 'after-publish');
        resets++;
        cutOff.push(events);
      }
      const sending = pubs[c].send(events);
      if (c === 0 && b % 8 === 4) {
        await worker.resetChannel(channel);
        resets++;
      }
      await sending;
    }
  }));
  t.diagnostic(`${resets} resets; publish attempts unacknowledged and retried: ${pubs.map((p) => p.log.unacknowledged).join(', ')}`);
  assert.equal(resets, 10);
  assert.ok(pubs[0].log.unacknowledged >= cutOff.length, `each cut-off publish failed and was retried: ${pubs[0].log.unacknowledged}`);
  assert.ok(pubs[0].log.overloaded >= cutOff.length, `each cut-off publish was answered 503 overloaded: ${pubs[0].log.overloaded}`);
  const resent = pubs[0].log.acknowledged.filter(({ events }) => cutOff.includes(events));
  t.diagnostic(`cut-off batches the object had stored before its reset: ${resent.filter(({ results }) => results.every((r) => r.duplicate)).length} of ${cutOff.length}`);
  assert.ok(constructions() - built >= resets, `the object was built again after each reset: ${constructions() - built} constructions`);

  for (const [c, pub] of pubs.entries()) {
    const ids = new Map();
    for (const { events, results } of pub.log.acknowledged) events.forEach((e, i) => ids.set(e.data.n, results[i].id));
    assert.deepEqual([...ids.keys()].sort((x, y) => x - y).map((n) => ids.get(n)), Array.from({ length: total }, (_, i) => i + 1), `channel ${c}: each event stored once`);
  }
  await Promise.all(subs.map((s, i) => s.waitForData(shapes[i].length * total, 60_000)));
  await sleep(300); // a duplicate would arrive now
  subs.forEach((s, i) => {
    const cs = shapes[i].map((c) => channels[c]);
    assertExactlyOnceInOrder(s, channels, total, (channel) => (cs.includes(channel) ? Array.from({ length: total }, (_, n) => n) : []));
    // The relay attached to the new object by itself: the client never noticed.
    assert.equal(s.connections.length, 1, `subscriber ${i} reconnected`);
    assert.deepEqual(s.events.filter((e) => e.type.startsWith('stream-') && e.type !== 'stream-open'), [], `subscriber ${i}`);
  });
});

test('a client that stops reading is cut as lagging; the streams beside it lose nothing, and it resumes to every event once', async (t) => {
  const worker = await startWorker({ vars: { KEEPALIVE_SECONDS: '1', RETRY_MS: '100', HISTORY_SIZE: '5000' }, handleStructuredLogs: logCollector().handleStructuredLogs });
  cleanups.push(() => worker.stop());
  const tenant = newTenant();
  const channel = channelOf(tenant);
  const token = await subscriber(tenant);
  const pub = await publisher(tenant);
  const readers = Array.from({ length: 3 }, () => subscribe(worker.url, [channel], { token, types: ['blob'] }));
  for (const s of readers) cleanups.push(async () => s.close());
  await Promise.all(readers.map((s) => s.opened()));

  // A raw client that sends its request and then reads nothing.
  const socket = net.connect(Number(new URL(worker.url).port), '127.0.0.1');
  cleanups.push(async () => socket.destroy());
  await new Promise((r) => socket.once('connect', r));
  socket.pause();
  const target = new URL(streamUrl(worker.url, [channel]));
  socket.write(`GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  await eventually(async () => (await channelStats(worker.url, channel)).streams === 4, 10_000, 'four streams attached');

  // Batches of large events until the relay gives up on the stalled client
  // (its channel socket is released), then some more.
  const blob = 'x'.repeat(50_000);
  let published = 0;
  const batch = async () => {
    const events = Array.from({ length: 20 }, () => ({ channel, event: 'blob', data: { n: ++published, blob } }));
    const res = await publish(worker.url, pub, { events });
    assert.equal(res.status, 202, res.text);
  };
  while ((await channelStats(worker.url, channel)).streams === 4) {
    assert.ok(published < 4_000, 'the stalled client was never cut');
    await batch();
  }
  const cutAfter = published;
  for (let i = 0; i < 3; i++) await batch();
  t.diagnostic(`cut after ${cutAfter} events of 50 kB were published; ${published} in all`);

  // The readers got everything, once, in order, and were never cut.
  const all = Array.from({ length: published }, (_, i) => i + 1);
  await Promise.all(readers.map((s) => s.waitForData(published, 60_000)));
  await sleep(300);
  for (const s of readers) {
    assert.deepEqual(s.data().map((e) => JSON.parse(e.data).n), all);
    assert.ok(!s.events.some((e) => e.type === 'stream-error'), 'a reader was cut');
    assert.equal(s.connections.length, 1, 'a reader reconnected');
  }

  // The stalled client finds a prefix of the events and then the error.
  socket.resume();
  socket.setEncoding('utf8');
  let text = '';
  socket.on('data', (d) => (text += d));
  // The body without HTTP/1.1's chunk framing (SSE itself has no CR).
  const unchunked = () => text.slice(text.indexOf('\r\n\r\n') + 4).replace(/(^|\r\n)[0-9a-fA-F]+\r\n/g, '');
  await eventually(() => /event: stream-error\ndata: [^\n]*\n\n/.test(unchunked()), 30_000, 'stream-error');
  socket.destroy();
  const body = unchunked();
  assert.match(body.slice(body.indexOf('event: stream-error')), /"code":"lagging"/);
  const got = eventsOf(body).filter((e) => e.event === 'blob').map((e) => JSON.parse(e.data).n);
  assert.deepEqual(got, all.slice(0, got.length), 'a gapless prefix before the cut');
  assert.ok(got.length < published);

  // Resuming from its last event delivers the rest once, in order.
  // Done once the last event's frame has ended (its data is 50 kB long);
  // looking only at the newest text keeps this reader fast enough not to be
  // lagging itself.
  const last = `"n":${published},`;
  const complete = (x) => {
    const at = x.indexOf(last, Math.max(0, x.length - 200_000));
    return at >= 0 && x.includes('\n\n', at);
  };
  const { text: rest } = await readRaw(
    streamUrl(worker.url, [channel], { lastEventId: `${encodeURIComponent(channel)}:${got.length}` }),
    { headers: { Authorization: `Bearer ${token}` }, done: complete, timeoutMs: 30_000 },
  );
  assert.ok(!rest.includes('event: stream-error'), rest.slice(rest.indexOf('event: stream-error')).slice(0, 200));
  assert.deepEqual(eventsOf(rest).filter((e) => e.event === 'blob').map((e) => JSON.parse(e.data).n), all.slice(got.length));
});

test('a channel whose object keeps refusing ends its streams with stream-error unavailable and a jittered retry, then they come back', async (t) => {
  const retryMs = 1000;
  const worker = await startWorker({ vars: { RETRY_MS: String(retryMs) }, resettable: true, handleStructuredLogs: logCollector().handleStructuredLogs });
  after(() => worker.stop());
  const tenant = newTenant();
  const [channel, other] = [channelOf(tenant), channelOf(tenant)];
  const pub = await publisher(tenant);
  // Streams of the channel alone and of both channels take the two live paths.
  const lists = [[channel], [channel], [channel], [channel, other], [channel, other]];
  const raws = [];
  try {
    for (const list of lists) {
      const s = await rawStream(streamUrl(worker.url, list), { headers: { Authorization: `Bearer ${await subscriber(tenant)}` } });
      await s.opened();
      raws.push(s);
    }
    assert.equal((await publish(worker.url, pub, { channel, event: 'x.n', data: 1 })).status, 202);
    await Promise.all(raws.map((s) => s.until((text) => eventsOf(text).some((e) => e.event === 'x.n'), 10_000, 'the first event')));
    await worker.resetChannel(channel, 'refuse-subscribe');
    // Five attempts with growing waits (about 8 s in all), then the end.
    const ends = await Promise.all(raws.map((s) => s.end(30_000)));
    const retries = ends.map((text, i) => {
      const tail = text.slice(text.lastIndexOf('retry: '));
      const error = eventsOf(tail).find((e) => e.event === 'stream-error');
      assert.ok(error, `stream ${i} ended with a stream-error: ${JSON.stringify(tail.slice(0, 300))}`);
      assert.equal(JSON.parse(error.data).code, 'unavailable');
      return Number(/^retry: (\d+)$/m.exec(tail)[1]);
    });
    t.diagnostic(`retry: of the ended streams ${retries.join(', ')} ms`);
    for (const retry of retries) assert.ok(retry >= retryMs && retry <= 3 * retryMs, `retry: ${retry} within RETRY_MS × 1-3`);
    assert.ok(new Set(retries).size > 1, 'the retries are spread, not one value for every stream');
    await worker.resetChannel(channel, 'admit');
    const back = await rawStream(streamUrl(worker.url, [channel]), {
      headers: { Authorization: `Bearer ${await subscriber(tenant)}`, 'Last-Event-ID': `${encodeURIComponent(channel)}:1` },
    });
    try {
      await back.opened();
      assert.equal((await publish(worker.url, pub, { channel, event: 'x.n', data: 2 })).status, 202);
      await back.until((text) => eventsOf(text).some((e) => e.data === '2'), 10_000, 'the event after the channel came back');
    } finally {
      await back.close();
    }
  } finally {
    await Promise.all(raws.map((s) => s.close()));
  }
});

test('a channel object evicted while idle, its streams still connected, wakes for the next publish and every stream gets it once', async (t) => {
  const logs = logCollector();
  const worker = await startWorker({ vars: { RETRY_MS: '100' }, resettable: true, handleStructuredLogs: logs.handleStructuredLogs });
  after(() => worker.stop());
  const constructions = () => logs.lines.filter((l) => l.message.includes('"test":"channel-object-constructed"')).length;
  const tenant = newTenant();
  const [channel, other] = [channelOf(tenant), channelOf(tenant)];
  const pub = await publisher(tenant);
  const raws = [];
  try {
    for (const list of [[channel], [channel], [channel, other]]) {
      const s = await rawStream(streamUrl(worker.url, list), { headers: { Authorization: `Bearer ${await subscriber(tenant)}` } });
      await s.opened();
      raws.push(s);
    }
    const got = (n) => (text) => eventsOf(text).filter((e) => e.event === 'x.n').length >= n;
    assert.equal((await publish(worker.url, pub, { channel, event: 'x.n', data: 1 })).status, 202);
    await Promise.all(raws.map((s) => s.until(got(1), 10_000, 'the first event')));
    const before = constructions();
    // workerd evicts an object with no request in flight after 10 s; its
    // accepted sockets go to the hibernation manager and stay connected.
    await new Promise((resolve) => setTimeout(resolve, 13_000));
    assert.equal((await publish(worker.url, pub, { channel, event: 'x.n', data: 2 })).status, 202);
    await Promise.all(raws.map((s) => s.until(got(2), 10_000, 'the event after the eviction')));
    t.diagnostic(`channel object constructions: ${before} before the idle hold, ${constructions()} after`);
    assert.ok(constructions() > before, 'the idle object was evicted and built again for the publish');
    for (const s of raws) {
      assert.deepEqual(eventsOf(s.text).filter((e) => e.event === 'x.n').map((e) => e.data), ['1', '2']);
      assert.equal(eventsOf(s.text).filter((e) => e.event === 'stream-open').length, 1, 'no reconnect');
      assert.equal(s.ended, false);
    }
  } finally {
    await Promise.all(raws.map((s) => s.close()));
  }
});
