// The typed client (`edgestream/client`, built from client/src by
// `npm run build:client`) in Node against the worker in workerd, with tokens
// and with stream tickets. Its retry decisions are in client-retry.test.mjs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertClientBuilt } from './support/client.mjs';

assertClientBuilt();
const { EdgestreamClient, parseCursor } = await import('edgestream/client');
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
 * A fetch that records every stream request the client makes: its URL and
 * the credential it carried.
 */
function recordingFetch() {
  const requests = [];
  const recording = (input, init) => {
    const headers = new Headers(init?.headers);
    requests.push({ url: new URL(String(input)), authorization: headers.get('authorization') });
    return fetch(input, init);
  };
  return { recording, requests };
}

/** A client on `channels` that records everything it reports. */
function recordingClient(base, channels, options = {}) {
  const seen = { events: [], errors: [], resets: [], opens: [], states: [] };
  const { recording, requests } = recordingFetch();
  const client = new EdgestreamClient({
    url: base,
    channels,
    fetch: recording,
    onOpen: (info) => seen.opens.push(info),
    onReset: (info) => seen.resets.push(info),
    onError: (error) => seen.errors.push(error),
    onStateChange: (state) => seen.states.push(state),
    ...options,
  });
  const record = (data, event) => seen.events.push({ ...event, data });
  for (const type of options.types ?? ['scan.progress']) client.on(type, record);
  return { client, seen, requests };
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
    const { seen, requests } = track(recordingClient(worker.url, [channel], { getToken, refreshBeforeSeconds: 2 }));
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
    assert.equal(requests.length, minted, 'one connection per token');
    assert.deepEqual(
      seen.events.map((e) => e.seq),
      Array.from({ length: n }, (_, i) => i + 1),
      'every event once, in order',
    );
    // Each new connection carried a fresh token and the cursor of the last event delivered before it.
    const tokens = new Set(requests.map((r) => r.authorization));
    assert.equal(tokens.size, requests.length, 'a fresh token per connection');
    assert.ok(requests.every((r) => r.url.searchParams.get('access_token') === null), 'the token travels in the header, not the URL');
    for (const { url } of requests.slice(1)) {
      const cursor = url.searchParams.get('lastEventId');
      assert.ok(cursor, `reconnect URL has lastEventId: ${url}`);
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
    const { seen, requests } = track(recordingClient(worker.url, [channel], { getToken }));
    await waitFor(() => seen.opens.length === 1, 'stream-open');
    await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: 1 } });
    await waitFor(() => seen.events.length === 1, 'the first event');
    await waitFor(() => seen.errors.some((e) => e.code === 'token_expired'), 'token_expired', 6_000);
    const error = seen.errors.find((e) => e.code === 'token_expired');
    assert.equal(error.fatal, false);
    assert.equal(error.retryInMs, 0, 'an expired token is replaced at once');
    await waitFor(() => seen.opens.length === 2, 'the second stream-open');
    assert.equal(minted, 2);
    assert.equal(requests[1].url.searchParams.get('lastEventId'), seen.events[0].id);
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
    const { client, seen, requests } = track(recordingClient(worker.url, [foreign], { getToken: () => subscriber(tenant) }));
    await waitFor(() => seen.errors.length === 1, 'an error');
    assert.equal(seen.errors[0].code, 'channel_forbidden');
    assert.equal(seen.errors[0].status, 403);
    assert.equal(seen.errors[0].fatal, true);
    assert.match(seen.errors[0].message, /tenant/);
    assert.equal(client.state, 'closed');
    await sleep(1_000);
    assert.equal(requests.length, 1, 'no retry loop, and no second request to learn why');
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
    const sent = requests.map((r) => r.url.searchParams.get('lastEventId'));
    assert.ok(sent.includes(cursor), `a reconnect resumed from ${cursor}: ${JSON.stringify(sent)}`);
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
    const { seen, requests } = track(recordingClient(worker.url, [channel], { getTicket, reconnectDelayMs: 100 }));
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
    // While the runtime is down, getTicket fails and no stream is attempted; each attempt has its own ticket.
    const urls = requests.map((r) => r.url);
    const tickets = urls.map((u) => u.searchParams.get('ticket'));
    assert.deepEqual(tickets, issued, 'each connection used the ticket issued for it');
    assert.notEqual(tickets[1], tickets[0], 'a new ticket for the reconnect');
    assert.ok(requests.every((r) => r.url.searchParams.get('access_token') === null && r.authorization === null), 'no token sent');
    assert.equal(urls[0].searchParams.get('lastEventId'), null);
    assert.ok(urls.slice(1).every((u) => u.searchParams.get('lastEventId') === cursor), 'every reconnect resumes from the cursor');
    assert.equal(new Set(tickets).size, tickets.length, 'no ticket was used twice');
    assert.ok(!seen.errors.some((e) => e.fatal || e.status === 401), JSON.stringify(seen.errors));
  });
});
