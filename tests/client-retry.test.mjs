// How the typed client reconnects, and when it stops: against the worker in
// workerd for what the relay itself does (kicks, revocations, a lagging
// client), and against a scripted HTTP server for answers that are hard to
// provoke on cue (503 and 429 with Retry-After, a 401, an HTML page).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { assertClientBuilt } from './support/client.mjs';
import { startWorker, logCollector } from './support/worker.mjs';
import { publish } from './support/sse.mjs';
import { token, subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';

assertClientBuilt();
const { EdgestreamClient } = await import('edgestream/client');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(predicate, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A client that records what it reports, and every stream request it makes (with the time). */
function recordingClient(options) {
  const seen = { events: [], errors: [], opens: 0, states: [], requests: [] };
  const client = new EdgestreamClient({
    ...options,
    fetch: (input, init) => {
      const url = new URL(String(input));
      seen.requests.push({ at: Date.now(), url, lastEventId: url.searchParams.get('lastEventId'), authorization: new Headers(init?.headers).get('authorization') });
      return (options.fetch ?? fetch)(input, init);
    },
    onOpen: () => (seen.opens += 1),
    onError: (e) => seen.errors.push({ ...e, at: Date.now() }),
    onStateChange: (s) => seen.states.push(s),
  });
  client.on(options.type ?? 'scan.progress', (data, event) => seen.events.push(event.seq));
  return { client, seen };
}

describe('against the relay', () => {
  let worker;
  const logs = logCollector();
  const clients = [];
  let admin;
  before(async () => {
    // Small events keep the lagging client's backlog small; history holds all of it.
    const vars = { RETRY_MS: '200', MAX_EVENT_BYTES: '4096', HISTORY_SIZE: '20000', KEEPALIVE_SECONDS: '1' };
    worker = await startWorker({ vars, handleStructuredLogs: logs.handleStructuredLogs });
    admin = await token({ scope: 'events:admin events:platform' });
  });
  after(async () => {
    for (const c of clients) c.close();
    await worker?.stop();
  });

  const kick = (body) =>
    fetch(new URL('/v1/admin/kick', worker.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('kicked: reports it, waits the relay\'s retry:, and resumes with nothing lost or repeated', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const { client, seen } = recordingClient({ url: worker.url, channels: [channel], getToken: () => subscriber(tenant) });
    clients.push(client);
    await waitFor(() => seen.opens === 1, 'stream-open');
    for (let pct = 1; pct <= 3; pct++) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } });
    await waitFor(() => seen.events.length === 3, '3 events');
    // A tenant kick ends the streams without revoking anyone.
    assert.equal((await kick({ tenant })).status, 200);
    await waitFor(() => seen.errors.length === 1, 'the kick');
    for (let pct = 4; pct <= 6; pct++) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } });
    await waitFor(() => seen.events.length >= 6 && seen.opens === 2, 'the events after the kick');
    await sleep(200);
    const [kicked] = seen.errors;
    assert.deepEqual([kicked.code, kicked.fatal], ['kicked', false]);
    assert.ok(kicked.retryInMs >= 200 && kicked.retryInMs <= 300, `retry: 200 spread by half: ${kicked.retryInMs}`);
    assert.equal(seen.requests.length, 2);
    assert.ok(seen.requests[1].at - kicked.at >= kicked.retryInMs - 5, 'waited as reported');
    assert.deepEqual(seen.events, [1, 2, 3, 4, 5, 6], 'every event once, in order');
    assert.deepEqual(seen.states, ['open', 'reconnecting', 'open']);
  });

  it('revoked: a kicked user is refused with 403 revoked and the client stops, after one attempt', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const { client, seen } = recordingClient({ url: worker.url, channels: [channel], getToken: () => subscriber(tenant, { sub: 'mallory' }) });
    clients.push(client);
    await waitFor(() => seen.opens === 1, 'stream-open');
    assert.equal((await kick({ tenant, user: 'mallory', ttl_seconds: 60 })).status, 200);
    await waitFor(() => client.state === 'closed', 'the client to give up');
    await sleep(800);
    assert.deepEqual(
      seen.errors.map((e) => [e.code, e.status, e.fatal]),
      [['kicked', undefined, false], ['revoked', 403, true]],
    );
    assert.equal(seen.requests.length, 2, 'no retry after the refusal');
    assert.deepEqual(seen.states, ['open', 'reconnecting', 'closed']);
  });

  it('lagging: a client that stopped reading is cut, then resumes from its last event with nothing lost or repeated', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    // The first stream's body is held unread (a busy page), as if the client had stopped reading.
    let release;
    const held = new Promise((r) => (release = r));
    let first = true;
    const stalling = async (input, init) => {
      const res = await fetch(input, init);
      if (!first || !res.ok) return res;
      first = false;
      const upstream = res.body.getReader();
      const body = new ReadableStream(
        {
          async pull(controller) {
            await held;
            const { value, done } = await upstream.read();
            if (done) controller.close();
            else controller.enqueue(value);
          },
          cancel: (reason) => upstream.cancel(reason),
        },
        { highWaterMark: 0 },
      );
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const { client, seen } = recordingClient({ url: worker.url, channels: [channel], getToken: () => subscriber(tenant), fetch: stalling, type: 'blob.sent' });
    clients.push(client);
    await waitFor(() => seen.requests.length === 1, 'the stream request');
    await sleep(300);
    const lagged = () => logs.lines.some((l) => l.message.includes('"lagging"') && l.message.includes('stream ended'));
    const blob = 'x'.repeat(3900);
    let published = 0;
    while (!lagged()) {
      assert.ok(published < 20_000, 'the relay never gave up on the stalled stream');
      const events = Array.from({ length: 100 }, () => ({ channel, event: 'blob.sent', data: { n: ++published, blob } }));
      const res = await publish(worker.url, pub, { events });
      assert.equal(res.status, 202, res.text);
    }
    release();
    await waitFor(() => seen.events.length >= published && seen.opens === 2, `${published} events`, 20_000);
    await sleep(200);
    const [lagging] = seen.errors;
    assert.deepEqual([lagging.code, lagging.fatal], ['lagging', false]);
    assert.ok(lagging.retryInMs >= 200, `${lagging.retryInMs}`);
    assert.equal(seen.errors.length, 1, JSON.stringify(seen.errors));
    assert.equal(seen.requests.length, 2);
    const resumedFrom = Number(seen.requests[1].lastEventId.split(':').at(-1));
    assert.ok(resumedFrom > 0 && resumedFrom < published, `resumed from what it had read: ${resumedFrom} of ${published}`);
    assert.equal(seen.events.length, published);
    assert.ok(seen.events.every((seq, i) => seq === i + 1), 'every event once, in order');
  });
});

/**
 * An HTTP server that answers each stream request with the next scripted
 * answer: `(req, res) => void`.
 */
async function scriptedRelay(answers) {
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push({ at: Date.now(), url: new URL(req.url, 'http://x'), authorization: req.headers.authorization });
    const answer = answers.shift();
    if (answer) answer(req, res);
    else res.writeHead(503, { 'Retry-After': '60' }).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

const problem = (status, code, headers = {}) => (req, res) =>
  res.writeHead(status, { 'Content-Type': 'application/problem+json', ...headers }).end(JSON.stringify({ status, code, title: code, detail: `${code} (scripted)` }));
/** A stream that sends `frames` and then, unless `hold`, ends. */
const stream = (frames, { hold = false } = {}) => (req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8' });
  res.write(frames);
  if (!hold) res.end();
};
const OPEN = 'event: stream-open\ndata: {"channels":[]}\n\n';
const CHANNEL = channelOf(newTenant());
const progress = (seq) => `id: ${encodeURIComponent(CHANNEL)}:${seq}\nevent: scan.progress\ndata: {"pct":${seq}}\n\n`;

describe('against a scripted relay', () => {
  const clients = [];
  after(() => {
    for (const c of clients) c.close();
  });
  const channel = CHANNEL;
  let minted = 0;
  const getToken = () => `token-${++minted}`;

  it("honours Retry-After on 503 and 429, and the stream's retry: after a clean end or a stream-error", async () => {
    const relay = await scriptedRelay([
      problem(503, 'overloaded', { 'Retry-After': '1' }),
      problem(429, 'quota_exceeded', { 'Retry-After': '1' }),
      stream(`retry: 150\n\n${OPEN}${progress(1)}`),
      stream(`${OPEN}${progress(2)}event: stream-error\ndata: {"code":"unavailable","message":"scripted"}\n\n`, { hold: true }),
      stream(`${OPEN}${progress(3)}`, { hold: true }),
    ]);
    try {
      const { client, seen } = recordingClient({ url: relay.url, channels: [channel], getToken, reconnectDelayMs: 50 });
      clients.push(client);
      await waitFor(() => seen.events.length === 3, '3 events', 8_000);
      client.close();
      const [overloaded, quota, unavailable] = seen.errors;
      assert.deepEqual(
        seen.errors.map((e) => [e.code, e.status, e.fatal]),
        [['overloaded', 503, false], ['quota_exceeded', 429, false], ['unavailable', undefined, false]],
      );
      assert.equal(overloaded.message, 'overloaded (scripted)');
      for (const e of [overloaded, quota]) assert.ok(e.retryInMs >= 1000 && e.retryInMs <= 1500, `Retry-After 1 s: ${e.retryInMs}`);
      // The relay's retry: (150 ms) replaces the client's own 50 ms once it arrives.
      assert.ok(unavailable.retryInMs >= 150 && unavailable.retryInMs <= 225, `retry: 150: ${unavailable.retryInMs}`);
      const at = relay.requests.map((r) => r.at);
      assert.ok(at[1] - at[0] >= overloaded.retryInMs - 5 && at[2] - at[1] >= quota.retryInMs - 5, 'waited as long as reported');
      assert.ok(at[3] - at[2] >= 150, `after a clean end, retry: is honoured too: ${at[3] - at[2]} ms`);
      assert.ok(at[4] - at[3] >= unavailable.retryInMs - 5);
      assert.deepEqual(
        relay.requests.map((r) => r.url.searchParams.get('lastEventId')),
        [null, null, null, `${encodeURIComponent(channel)}:1`, `${encodeURIComponent(channel)}:2`],
        'every reconnect resumes from the last event',
      );
      assert.deepEqual(seen.events, [1, 2, 3]);
    } finally {
      await relay.close();
    }
  });

  it('retries a 401 once, at once, with a fresh token; a second 401 in a row is fatal', async () => {
    const relay = await scriptedRelay([
      problem(401, 'invalid_token'),
      stream(OPEN + progress(1)),
      problem(401, 'invalid_token'),
      problem(401, 'invalid_token'),
    ]);
    try {
      const { client, seen } = recordingClient({ url: relay.url, channels: [channel], getToken, reconnectDelayMs: 50 });
      clients.push(client);
      await waitFor(() => client.state === 'closed', 'the client to give up');
      await sleep(300);
      assert.deepEqual(
        seen.errors.map((e) => [e.code, e.status, e.fatal, e.retryInMs]),
        [['invalid_token', 401, false, 0], ['invalid_token', 401, false, 0], ['invalid_token', 401, true, undefined]],
      );
      assert.equal(relay.requests.length, 4);
      const tokens = relay.requests.map((r) => r.authorization);
      assert.equal(new Set(tokens).size, 4, `a fresh token for every attempt: ${tokens}`);
      assert.ok(tokens.every((t) => /^Bearer token-\d+$/.test(t)));
      assert.deepEqual(seen.events, [1]);
    } finally {
      await relay.close();
    }
  });

  it('stops on a permanent refusal, and backs off from a page that is not an event stream', async () => {
    const relay = await scriptedRelay([
      (req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>a login page</html>'),
      (req, res) => res.writeHead(502).end(),
      problem(403, 'revoked'),
    ]);
    try {
      const { client, seen } = recordingClient({ url: relay.url, channels: [channel], getToken, reconnectDelayMs: 50 });
      clients.push(client);
      await waitFor(() => client.state === 'closed', 'the client to give up');
      await sleep(300);
      assert.deepEqual(
        seen.errors.map((e) => [e.code, e.status, e.fatal]),
        [['not_event_stream', 200, false], ['http_502', 502, false], ['revoked', 403, true]],
      );
      const [html, bad] = seen.errors;
      assert.ok(html.retryInMs >= 50 && html.retryInMs <= 75, `${html.retryInMs}`);
      assert.ok(bad.retryInMs >= 100 && bad.retryInMs <= 150, `doubled for the second failure in a row: ${bad.retryInMs}`);
      assert.equal(relay.requests.length, 3);
    } finally {
      await relay.close();
    }
  });

  it('backs off, doubling, while the relay cannot be reached', async () => {
    const relay = await scriptedRelay([]);
    await relay.close();
    const { client, seen } = recordingClient({ url: relay.url, channels: [channel], getToken, reconnectDelayMs: 40 });
    clients.push(client);
    await waitFor(() => seen.errors.length >= 4, '4 failures');
    client.close();
    const floors = seen.errors.slice(0, 4).map((e) => e.retryInMs);
    seen.errors.slice(0, 4).forEach((e, i) => {
      assert.equal(e.code, 'network');
      assert.ok(e.retryInMs >= 40 * 2 ** i && e.retryInMs <= 60 * 2 ** i, `failure ${i + 1}: ${floors}`);
    });
    assert.deepEqual(seen.states, ['closed'], 'never open, so never reconnecting');
  });
});
