// GET /v1/stream: response headers, the frames of a stream in order, event
// ids in the django-eventstream cursor format, keep-alives, and fan-out to
// several subscribers.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish, streamUrl } from './support/sse.mjs';
import { rawStream, eventsOf, parseFrames, field, cursorOf, quote, countEvents } from './support/http.mjs';

// Not the default (3000), so that the `retry:` field is seen to come from the setting.
const RETRY_MS = 2_500;
let worker;
let base;
const logs = logCollector();

before(async () => {
  worker = await startWorker({ vars: { KEEPALIVE_SECONDS: '1', RETRY_MS: String(RETRY_MS) }, handleStructuredLogs: logs.handleStructuredLogs });
  base = worker.url;
});
after(async () => {
  await worker?.stop();
});

async function publishOk(tenant, body) {
  const r = await publish(base, await publisher(tenant), body);
  assert.equal(r.status, 202, r.text);
  return r.body;
}

/** Opens a raw stream with the token in the header; the caller closes it. */
async function raw(tenant, channels, { query = {}, headers = {}, url } = {}) {
  const token = await subscriber(tenant);
  return rawStream(url ?? streamUrl(base, channels, query), {
    headers: { Authorization: `Bearer ${token}`, ...headers },
  });
}

describe('stream response', () => {
  it('is 200 text/event-stream with no-cache, no-transform, X-Accel-Buffering: no and no Content-Encoding', async () => {
    const t = newTenant();
    // A client that accepts compression must still get the stream uncompressed.
    const s = await raw(t, [channelOf(t)], { headers: { 'Accept-Encoding': 'gzip, deflate, br' } });
    try {
      assert.equal(s.res.status, 200);
      assert.equal(s.res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(s.res.headers.get('cache-control'), 'no-cache, no-transform');
      assert.equal(s.res.headers.get('x-accel-buffering'), 'no');
      assert.equal(s.res.headers.get('content-encoding'), null);
      await s.opened();
    } finally {
      await s.close();
    }
  });

  it('starts with retry: RETRY_MS, then stream-open naming the channels', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const s = await raw(t, [a]);
    try {
      const text = await s.opened();
      const frames = parseFrames(text);
      assert.ok(frames.length >= 2, text);
      assert.deepEqual(frames[0].fields.map(([n]) => n), ['retry'], `first frame: ${text}`);
      assert.equal(field(frames[0], 'retry'), String(RETRY_MS));
      assert.equal(field(frames[1], 'event'), 'stream-open');
      assert.deepEqual(JSON.parse(field(frames[1], 'data')), { channels: [a] });
      // Exactly this text: nothing before it, one data line.
      assert.ok(
        text.startsWith(`retry: ${field(frames[0], 'retry')}\n\nevent: stream-open\ndata: ${JSON.stringify({ channels: [a] })}\n\n`),
        JSON.stringify(text),
      );
    } finally {
      await s.close();
    }
  });

  it('sends ": keep-alive" comments every KEEPALIVE_SECONDS', async () => {
    const t = newTenant();
    const s = await raw(t, [channelOf(t)]);
    try {
      await s.opened();
      const started = Date.now();
      // KEEPALIVE_SECONDS is 1 here: four comments arrive well within 8 s,
      // and no more often than one a second. The first comes at a random
      // point of the first interval, so the span from it to the fourth is
      // three intervals; 2 s of it leaves a second for this process's
      // scheduling noise and still fails comments sent twice as often.
      const count = (x) => (x.match(/^: keep-alive\n\n/gm) ?? []).length;
      await s.until((x) => count(x) >= 1, 8_000, 'the first keep-alive');
      const first = Date.now();
      const text = await s.until((x) => count(x) >= 4, 8_000, 'four keep-alives');
      const span = Date.now() - first;
      assert.ok(Date.now() - started < 8_000);
      assert.ok(span >= 2_000, `four keep-alives within ${span} ms`);
      const comments = parseFrames(text).flatMap((f) => f.comments);
      assert.ok(comments.length >= 2);
      for (const c of comments) assert.equal(c, 'keep-alive');
      // A keep-alive is a comment, never an event.
      assert.equal(countEvents(text), 1, 'only stream-open is an event');
    } finally {
      await s.close();
    }
  });

  it('frames every event as id, event, data and numbers a channel 1, 2, 3', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const s = await raw(t, [a]);
    try {
      await s.opened();
      for (const pct of [10, 20, 30]) {
        await publishOk(t, { channel: a, event: 'scan.progress', data: { pct } });
      }
      const text = await s.until((x) => countEvents(x) >= 4, 10_000, 'three events');
      const enc = quote(a);
      assert.equal(enc, a.replaceAll(':', '%3A'));
      const tail = text.slice(text.indexOf('\n\n', text.indexOf('event: stream-open')) + 2).replace(/^: keep-alive\n\n/gm, '');
      assert.equal(
        tail,
        `id: ${enc}:1\nevent: scan.progress\ndata: {"pct":10}\n\n` +
          `id: ${enc}:2\nevent: scan.progress\ndata: {"pct":20}\n\n` +
          `id: ${enc}:3\nevent: scan.progress\ndata: {"pct":30}\n\n`,
      );
    } finally {
      await s.close();
    }
  });
});

describe('channel parameters', () => {
  it('takes repeated channel= parameters', async () => {
    const t = newTenant();
    const [a, b, c] = [channelOf(t), channelOf(t), channelOf(t)];
    const url = `${base}/v1/stream?channel=${encodeURIComponent(a)}&channel=${encodeURIComponent(b)}&channel=${encodeURIComponent(c)}`;
    const s = await raw(t, [], { url });
    try {
      assert.equal(s.res.status, 200);
      const text = await s.opened();
      assert.deepEqual(JSON.parse(eventsOf(text)[0].data), { channels: [a, b, c] });
    } finally {
      await s.close();
    }
  });

  it('takes channels=a,b', async () => {
    const t = newTenant();
    const [a, b] = [channelOf(t), channelOf(t)];
    const url = `${base}/v1/stream?channels=${encodeURIComponent(`${a},${b}`)}`;
    const s = await raw(t, [], { url });
    try {
      assert.equal(s.res.status, 200);
      const text = await s.opened();
      assert.deepEqual(JSON.parse(eventsOf(text)[0].data), { channels: [a, b] });
    } finally {
      await s.close();
    }
  });

  it('takes channels=a,b with unencoded separators, and combines it with channel=', async () => {
    const t = newTenant();
    const [a, b, c] = [channelOf(t), channelOf(t), channelOf(t)];
    const url = `${base}/v1/stream?channels=${a},${b}&channel=${c}`;
    const s = await raw(t, [], { url });
    try {
      assert.equal(s.res.status, 200);
      const text = await s.opened();
      assert.deepEqual(new Set(JSON.parse(eventsOf(text)[0].data).channels), new Set([a, b, c]));
    } finally {
      await s.close();
    }
  });
});

describe('fan-out', () => {
  it('two subscribers on one channel both receive three events in order with ids 1, 2, 3', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const token = await subscriber(t);
    const subs = [
      subscribe(base, [a], { token, types: ['scan.progress'] }),
      subscribe(base, [a], { token, viaQuery: true, types: ['scan.progress'] }),
    ];
    try {
      await Promise.all(subs.map((s) => s.opened()));
      for (const pct of [1, 2, 3]) await publishOk(t, { channel: a, event: 'scan.progress', data: { pct } });
      await Promise.all(subs.map((s) => s.waitForData(3, 10_000)));
      const enc = quote(a);
      for (const s of subs) {
        assert.deepEqual(s.data(), [
          { type: 'scan.progress', id: `${enc}:1`, data: '{"pct":1}' },
          { type: 'scan.progress', id: `${enc}:2`, data: '{"pct":2}' },
          { type: 'scan.progress', id: `${enc}:3`, data: '{"pct":3}' },
        ]);
        assert.deepEqual(s.errors, []);
      }
    } finally {
      for (const s of subs) s.close();
    }
  });

  it('a multi-channel stream gives ids that carry the position of every channel', async () => {
    const t = newTenant();
    const [a, b] = [channelOf(t, 'alpha'), channelOf(t, 'beta')];
    const token = await subscriber(t);
    const s = subscribe(base, [a, b], { token, types: ['scan.progress', 'scan.completed'] });
    try {
      await s.opened();
      // Each publish waits for the previous event, so the order across
      // channels is fixed.
      const steps = [
        [a, 'scan.progress', { n: 1 }],
        [b, 'scan.progress', { n: 2 }],
        [a, 'scan.completed', { n: 3 }],
        [b, 'scan.completed', { n: 4 }],
        [b, 'scan.progress', { n: 5 }],
      ];
      for (const [i, [channel, event, data]] of steps.entries()) {
        await publishOk(t, { channel, event, data });
        await s.waitForData(i + 1, 10_000);
      }
      assert.deepEqual(
        s.data().map((e) => e.id),
        [
          cursorOf([[a, 1], [b, 0]]),
          cursorOf([[a, 1], [b, 1]]),
          cursorOf([[a, 2], [b, 1]]),
          cursorOf([[a, 2], [b, 2]]),
          cursorOf([[a, 2], [b, 3]]),
        ],
      );
      assert.deepEqual(
        s.data().map((e) => [e.type, JSON.parse(e.data).n]),
        steps.map(([, event, data]) => [event, data.n]),
      );
      // Every id names each channel once, with ':' escaped inside the name.
      for (const e of s.data()) {
        const pairs = e.id.split(',');
        assert.equal(pairs.length, 2);
        for (const p of pairs) assert.match(p, /^scan-progress%3A[0-9a-f-]{36}%3A(alpha|beta):\d+$/);
      }
    } finally {
      s.close();
    }
  });

  it('streams of one channel (pre-rendered frames) and of several (relay records) frame a batch alike', async () => {
    const t = newTenant();
    const [a, b] = [channelOf(t, 'alpha'), channelOf(t, 'beta')];
    const single = await raw(t, [a]);
    const multi = await raw(t, [a, b]);
    try {
      await Promise.all([single.opened(), multi.opened()]);
      const events = [
        { event: 'message', data: { note: 'line one\nline two', emoji: '🛰️', quote: '"q"' } },
        { event: 'scan.progress', data: [1, 'two', null, { nested: { deep: true } }] },
        { event: 'scan.completed', data: 'a string with : and , and %3A' },
      ];
      await publishOk(t, { events: events.map((e) => ({ channel: a, ...e })) });
      const [fromSingle, fromMulti] = await Promise.all(
        [single, multi].map(async (s) => eventsOf(await s.until((x) => countEvents(x) >= 4, 10_000, 'the batch')).slice(1)),
      );
      assert.deepEqual(
        fromSingle.map((e) => e.id),
        [1, 2, 3].map((n) => `${quote(a)}:${n}`),
      );
      assert.deepEqual(
        fromMulti.map((e) => e.id),
        [1, 2, 3].map((n) => cursorOf([[a, n], [b, 0]])),
      );
      const content = (list) => list.map((e) => [e.event, JSON.parse(e.data)]);
      assert.deepEqual(content(fromSingle), content(fromMulti));
      assert.deepEqual(content(fromSingle), events.map((e) => [e.event, e.data]));
    } finally {
      await Promise.all([single.close(), multi.close()]);
    }
  });

  it('events of a channel the stream did not ask for never reach it', async () => {
    const t = newTenant();
    const [a, other] = [channelOf(t), channelOf(t)];
    const s = subscribe(base, [a], { token: await subscriber(t), types: ['scan.progress'] });
    try {
      await s.opened();
      await publishOk(t, { channel: other, event: 'scan.progress', data: { from: 'other' } });
      await publishOk(t, { channel: a, event: 'scan.progress', data: { from: 'a' } });
      await s.waitForData(1, 10_000);
      // The marker on `a` was published last; anything from `other` would
      // have been delivered by now if it were going to be.
      assert.deepEqual(s.data(), [{ type: 'scan.progress', id: `${quote(a)}:1`, data: '{"from":"a"}' }]);
    } finally {
      s.close();
    }
  });
});
