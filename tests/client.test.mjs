// The typed client (`edgestream/client`, built from client/src by
// `npm run build:client`) in Node with the npm `eventsource` package, against
// the worker in workerd (with tokens and with stream tickets); and its
// reconnect logic against a scripted EventSource, which drops and refuses
// streams on cue.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventSource } from 'eventsource';
import { assertClientBuilt } from './support/client.mjs';

assertClientBuilt();
const { EdgestreamClient, parseCursor, jwtExpiry } = await import('edgestream/client');
import { startWorker, logCollector } from './support/worker.mjs';
import { publish } from './support/sse.mjs';
import { subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';
import { cursorOf } from './support/http.mjs';

const VARS = { RETRY_MS: '300', JWT_LEEWAY_SECONDS: '0', KEEPALIVE_SECONDS: '1' };

/** Polls `predicate` until it holds (bounded). */
async function waitFor(predicate, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * An EventSource class that records every URL it is constructed with and the
 * Last-Event-ID header of every request it makes (its own reconnects too).
 */
function recordingEventSource() {
  const urls = [];
  const requests = [];
  class Recording extends EventSource {
    constructor(url) {
      super(url, {
        fetch: (input, init) => {
          requests.push({ url: String(input), lastEventId: new Headers(init.headers).get('last-event-id') });
          return fetch(input, init);
        },
      });
      urls.push(new URL(url));
    }
  }
  return { Recording, urls, requests };
}

/** A client on `channels` that records everything it reports. */
function recordingClient(base, channels, options = {}) {
  const seen = { events: [], errors: [], resets: [], opens: [], states: [] };
  const { Recording, urls, requests } = recordingEventSource();
  const client = new EdgestreamClient({
    url: base,
    channels,
    EventSource: Recording,
    onOpen: (info) => seen.opens.push(info),
    onReset: (info) => seen.resets.push(info),
    onError: (error) => seen.errors.push(error),
    onStateChange: (state) => seen.states.push(state),
    ...options,
  });
  const record = (data, event) => seen.events.push({ ...event, data });
  for (const type of options.types ?? ['scan.progress']) client.on(type, record);
  return { client, seen, urls, requests };
}

describe('typed client in Node', () => {
  let worker;
  let persistPath;
  const clients = [];
  const track = (c) => {
    clients.push(c.client);
    return c;
  };

  before(async () => {
    persistPath = await mkdtemp(path.join(tmpdir(), 'edgestream-client-'));
    worker = await startWorker({ vars: VARS, persistPath, handleStructuredLogs: logCollector().handleStructuredLogs });
  });
  after(async () => {
    for (const c of clients) c.close();
    await worker?.stop();
    if (persistPath) await rm(persistPath, { recursive: true, force: true });
  });

  it('delivers typed events with parsed data, cursor, channel and sequence', async () => {
    const tenant = newTenant();
    const [a, b] = [channelOf(tenant, 'a'), channelOf(tenant, 'b')];
    const pub = await publisher(tenant);
    const { client, seen } = track(
      recordingClient(worker.url, [a, b], { getToken: () => subscriber(tenant), types: ['scan.progress', 'scan.completed'] }),
    );
    await waitFor(() => seen.opens.length === 1, 'stream-open');
    assert.deepEqual(seen.opens[0].channels, [a, b]);
    assert.equal(client.state, 'open');
    assert.deepEqual(seen.states, ['open']);

    await publish(worker.url, pub, { channel: a, event: 'scan.progress', data: { pct: 10 } });
    await publish(worker.url, pub, { channel: b, event: 'scan.progress', data: { pct: 20 } });
    await publish(worker.url, pub, { channel: a, event: 'scan.completed', data: { findings: 3 } });
    await waitFor(() => seen.events.length === 3, '3 events');
    assert.deepEqual(
      seen.events.map((e) => [e.type, e.data, e.channel, e.seq]),
      [
        ['scan.progress', { pct: 10 }, a, 1],
        ['scan.progress', { pct: 20 }, b, 1],
        ['scan.completed', { findings: 3 }, a, 2],
      ],
    );
    assert.equal(seen.events[2].id, cursorOf([[a, 2], [b, 1]]));
    assert.equal(client.lastEventId, seen.events[2].id);
    assert.deepEqual(parseCursor(client.lastEventId), [[a, 2], [b, 1]]);
    assert.deepEqual(seen.errors, []);

    // A removed handler gets nothing more; the others still do.
    const extra = [];
    const off = client.on('scan.progress', (d) => extra.push(d));
    await publish(worker.url, pub, { channel: a, event: 'scan.progress', data: { pct: 50 } });
    await waitFor(() => extra.length === 1 && seen.events.length === 4, 'the 4th event');
    off();
    await publish(worker.url, pub, { channel: a, event: 'scan.progress', data: { pct: 60 } });
    await waitFor(() => seen.events.length === 5, 'the 5th event');
    assert.equal(extra.length, 1);
    client.close();
    assert.equal(client.state, 'closed');
  });

  it('refreshes the token before it expires and resumes from its cursor with nothing lost or repeated', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    let minted = 0;
    const getToken = () => {
      minted += 1;
      return subscriber(tenant, { exp: Math.floor(Date.now() / 1000) + 5 });
    };
    // Tokens live 4-5 s and are refreshed 2 s before they expire.
    const { seen, urls } = track(recordingClient(worker.url, [channel], { getToken, refreshBeforeSeconds: 2 }));
    await waitFor(() => seen.opens.length === 1, 'stream-open');
    // Publish steadily across a refresh.
    let n = 0;
    const deadline = Date.now() + 4_000;
    while (Date.now() < deadline) {
      n += 1;
      const r = await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: n } });
      assert.equal(r.status, 202, r.text);
      await sleep(40);
    }
    await waitFor(() => seen.events.length >= n, `${n} events`);
    await sleep(200);
    assert.ok(minted >= 2, `the token was refreshed (minted ${minted})`);
    assert.equal(urls.length, minted, 'one connection per token');
    assert.deepEqual(
      seen.events.map((e) => e.seq),
      Array.from({ length: n }, (_, i) => i + 1),
      'every event once, in order',
    );
    // Each new connection carried a fresh token and the cursor of the last event delivered before it.
    const tokens = new Set(urls.map((u) => u.searchParams.get('access_token')));
    assert.equal(tokens.size, urls.length, 'a fresh token per connection');
    for (const u of urls.slice(1)) {
      const cursor = u.searchParams.get('lastEventId');
      assert.ok(cursor, `reconnect URL has lastEventId: ${u}`);
      assert.ok(seen.events.some((e) => e.id === cursor), `lastEventId ${cursor} is a delivered event's id`);
    }
    assert.ok(!seen.errors.some((e) => e.code === 'token_expired'), JSON.stringify(seen.errors));
  });

  it('turns stream-error token_expired into onError and reconnects with a fresh token', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    let minted = 0;
    // The credential claims a long life, so only the relay's expiry frame can end the stream.
    const getToken = async () => {
      minted += 1;
      const exp = Math.floor(Date.now() / 1000) + (minted === 1 ? 2 : 600);
      return { token: await subscriber(tenant, { exp }), expiresAt: exp + 3600 };
    };
    const { seen, urls } = track(recordingClient(worker.url, [channel], { getToken }));
    await waitFor(() => seen.opens.length === 1, 'stream-open');
    await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: 1 } });
    await waitFor(() => seen.events.length === 1, 'the first event');
    await waitFor(() => seen.errors.some((e) => e.code === 'token_expired'), 'token_expired', 6_000);
    const error = seen.errors.find((e) => e.code === 'token_expired');
    assert.equal(error.fatal, false);
    await waitFor(() => seen.opens.length === 2, 'the second stream-open');
    assert.equal(minted, 2);
    assert.equal(urls[1].searchParams.get('lastEventId'), seen.events[0].id);
    await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: 2 } });
    await waitFor(() => seen.events.length === 2, 'the second event');
    assert.deepEqual(seen.events.map((e) => e.seq), [1, 2]);
  });

  it('turns stream-reset into onReset and then delivers the current state', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: 30 } });
    await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: 40 } });
    // A cursor ahead of the channel (its storage was reset) cannot be honoured.
    const { seen } = track(
      recordingClient(worker.url, [channel], { getToken: () => subscriber(tenant), lastEventId: cursorOf([[channel, 9]]) }),
    );
    await waitFor(() => seen.resets.length === 1 && seen.events.length === 1, 'reset and state');
    assert.deepEqual(seen.resets[0].channels, [channel]);
    assert.deepEqual(seen.events[0].data, { pct: 40 });
    assert.equal(seen.events[0].seq, 2);
  });

  it('reports a channel of another tenant as a fatal channel_forbidden and stops', async () => {
    const tenant = newTenant();
    const foreign = channelOf(newTenant());
    const { client, seen, urls } = track(recordingClient(worker.url, [foreign], { getToken: () => subscriber(tenant) }));
    await waitFor(() => seen.errors.length === 1, 'an error');
    assert.equal(seen.errors[0].code, 'channel_forbidden');
    assert.equal(seen.errors[0].status, 403);
    assert.equal(seen.errors[0].fatal, true);
    assert.match(seen.errors[0].message, /tenant/);
    assert.equal(client.state, 'closed');
    await sleep(1_000);
    assert.equal(urls.length, 1, 'no retry loop');
    assert.equal(seen.errors.length, 1);
  });

  it('resumes after the runtime restarts, with every event exactly once', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const { seen, requests } = track(recordingClient(worker.url, [channel], { getToken: () => subscriber(tenant) }));
    await waitFor(() => seen.opens.length === 1, 'stream-open');
    for (let i = 1; i <= 3; i++) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: i } });
    await waitFor(() => seen.events.length === 3, '3 events');
    const cursor = seen.events[2].id;

    const port = Number(new URL(worker.url).port);
    await worker.stop();
    worker = await startWorker({ vars: VARS, persistPath, port, handleStructuredLogs: logCollector().handleStructuredLogs });
    for (let i = 4; i <= 6; i++) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: i } });

    await waitFor(() => seen.events.length >= 6 && seen.opens.length >= 2, 'the events after the restart');
    await sleep(300);
    assert.deepEqual(seen.events.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
    assert.ok(
      requests.some((r) => r.lastEventId === cursor),
      `a reconnect sent Last-Event-ID ${cursor}: ${JSON.stringify(requests.map((r) => r.lastEventId))}`,
    );
  });

  it('with getTicket, takes a new ticket for every connection and resumes across a cut without loss', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    // What an app's backend does for the page: exchange its credential for a ticket.
    const token = await subscriber(tenant);
    const issued = [];
    const getTicket = async () => {
      const res = await fetch(new URL('/v1/tickets', worker.url), {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ channels: [channel] }),
      });
      const body = await res.json();
      if (res.status !== 201) throw new Error(`POST /v1/tickets: ${res.status} ${JSON.stringify(body)}`);
      assert.equal(body.expires_in, 60);
      assert.deepEqual(body.channels, [channel]);
      issued.push(body.ticket);
      return body.ticket;
    };
    const { seen, urls, requests } = track(recordingClient(worker.url, [channel], { getTicket, reconnectDelayMs: 100 }));
    await waitFor(() => seen.opens.length === 1, 'stream-open');
    assert.deepEqual(seen.opens[0].channels, [channel]);
    for (let i = 1; i <= 3; i++) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: i } });
    await waitFor(() => seen.events.length === 3, '3 events');
    const cursor = seen.events[2].id;

    // Cut every stream: restart the runtime on the same port and storage.
    const port = Number(new URL(worker.url).port);
    await worker.stop();
    worker = await startWorker({ vars: VARS, persistPath, port, handleStructuredLogs: logCollector().handleStructuredLogs });
    for (let i = 4; i <= 6; i++) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: i } });

    await waitFor(() => seen.events.length >= 6 && seen.opens.length >= 2, 'the events after the restart');
    await sleep(300);
    assert.deepEqual(seen.events.map((e) => e.seq), [1, 2, 3, 4, 5, 6], 'every event once, in order');
    assert.equal(urls.length, 2, `one reconnect: ${urls.map((u) => u.search).join(' ')}`);
    const tickets = urls.map((u) => u.searchParams.get('ticket'));
    assert.deepEqual(tickets, issued, 'each connection used the ticket issued for it');
    assert.notEqual(tickets[1], tickets[0], 'a new ticket for the reconnect');
    assert.ok(urls.every((u) => u.searchParams.get('access_token') === null), 'no token in a stream URL');
    assert.equal(urls[0].searchParams.get('lastEventId'), null);
    assert.equal(urls[1].searchParams.get('lastEventId'), cursor, 'the reconnect resumes from the cursor');
    // The EventSource never retried by itself with its spent ticket.
    assert.equal(requests.length, urls.length, JSON.stringify(requests.map((r) => r.url)));
    assert.ok(!seen.errors.some((e) => e.fatal || e.status === 401), JSON.stringify(seen.errors));
  });
});

/**
 * A scripted EventSource: the test drives open, frames and failures by hand.
 */
function scriptedEventSource() {
  const instances = [];
  class Scripted {
    constructor(url) {
      this.url = new URL(url);
      this.readyState = 0;
      this.listeners = new Map();
      this.closed = false;
      instances.push(this);
    }
    addEventListener(type, fn) {
      if (!this.listeners.has(type)) this.listeners.set(type, []);
      this.listeners.get(type).push(fn);
    }
    close() {
      this.closed = true;
      this.readyState = 2;
    }
    emit(type, event = {}) {
      for (const fn of this.listeners.get(type) ?? []) fn(event);
    }
    open() {
      this.readyState = 1;
      this.emit('open');
      this.emit('stream-open', { data: JSON.stringify({ channels: [] }) });
    }
    frame(type, data, lastEventId = '') {
      this.emit(type, { data: JSON.stringify(data), lastEventId });
    }
    /** A network failure: the EventSource would reconnect by itself. */
    drop() {
      this.readyState = 0;
      this.emit('error', {});
    }
    /** A refusal: the EventSource gives up. */
    refuse() {
      this.readyState = 2;
      this.emit('error', {});
    }
  }
  return { Scripted, instances };
}

describe('client reconnect logic (scripted EventSource)', () => {
  const clients = [];
  after(() => {
    for (const c of clients) c.close();
  });
  const channel = channelOf(newTenant());

  it('asks for a new single-use ticket for every connection and keeps the cursor', async () => {
    const { Scripted, instances } = scriptedEventSource();
    let issued = 0;
    const events = [];
    const client = new EdgestreamClient({
      url: 'http://127.0.0.1:9/base/',
      channels: [channel],
      getTicket: () => `ticket-${++issued}`,
      getToken: () => assert.fail('a ticket client does not put tokens in URLs'),
      EventSource: Scripted,
      reconnectDelayMs: 10,
    });
    clients.push(client);
    client.on('scan.progress', (d) => events.push(d.pct));
    await waitFor(() => instances.length === 1, 'the first connection');
    const first = instances[0];
    assert.equal(first.url.pathname, '/base/v1/stream');
    assert.equal(first.url.searchParams.get('ticket'), 'ticket-1');
    assert.equal(first.url.searchParams.get('access_token'), null);
    assert.equal(first.url.searchParams.get('lastEventId'), null);
    first.open();
    const id = cursorOf([[channel, 4]]);
    first.frame('scan.progress', { pct: 40 }, id);
    // A dropped connection would make the EventSource retry with the spent ticket.
    first.drop();
    assert.equal(first.closed, true);
    await waitFor(() => instances.length === 2, 'a reconnect');
    const second = instances[1];
    assert.equal(second.url.searchParams.get('ticket'), 'ticket-2');
    assert.equal(second.url.searchParams.get('lastEventId'), id);
    // Frames from a replaced EventSource are ignored.
    first.frame('scan.progress', { pct: 99 }, cursorOf([[channel, 9]]));
    second.open();
    second.frame('scan.progress', { pct: 50 }, cursorOf([[channel, 5]]));
    assert.deepEqual(events, [40, 50]);
    assert.equal(client.state, 'open');
  });

  it('lets the EventSource reconnect by itself in token mode, and retries a refusal with a fresh token', async () => {
    const { Scripted, instances } = scriptedEventSource();
    const probes = [];
    let minted = 0;
    const client = new EdgestreamClient({
      url: 'http://127.0.0.1:9',
      channels: [channel],
      getToken: () => `token-${++minted}`,
      EventSource: Scripted,
      // The probe that asks why a stream was refused: it works again.
      fetch: async (url) => {
        probes.push(new URL(url));
        return new Response(null, { status: 200 });
      },
      reconnectDelayMs: 10,
    });
    clients.push(client);
    client.on('scan.progress', () => {});
    await waitFor(() => instances.length === 1, 'the first connection');
    instances[0].open();
    instances[0].frame('scan.progress', {}, cursorOf([[channel, 1]]));
    instances[0].drop();
    assert.equal(instances[0].closed, false, 'the EventSource keeps its own reconnect');
    assert.equal(client.state, 'reconnecting');
    instances[0].refuse();
    await waitFor(() => instances.length === 2, 'a new connection');
    assert.equal(probes.length, 1);
    assert.equal(probes[0].searchParams.get('access_token'), 'token-2');
    assert.equal(instances[1].url.searchParams.get('access_token'), 'token-2');
    assert.equal(instances[1].url.searchParams.get('lastEventId'), cursorOf([[channel, 1]]));
  });

  it('reads JWT expiry and refuses bad options', () => {
    const payload = Buffer.from(JSON.stringify({ exp: 1234567890 })).toString('base64url');
    assert.equal(jwtExpiry(`e30.${payload}.sig`), 1234567890);
    assert.equal(jwtExpiry('opaque-ticket'), undefined);
    assert.throws(() => new EdgestreamClient({ url: 'http://127.0.0.1:9', channels: [], getToken: () => 't' }), /channel/);
    assert.throws(() => new EdgestreamClient({ url: 'http://127.0.0.1:9', channels: [channel] }), /getToken/);
    assert.throws(() => parseCursor('no-sequence'), /malformed/);
  });
});
