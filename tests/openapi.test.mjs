// docs/openapi.yaml against the running worker: every response the tests
// provoke must be documented for its operation and status, with the
// documented content type, required headers and body schema; the relay's own
// frames match their schemas; every documented operation is exercised.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, logCollector } from './support/worker.mjs';
import { publish, streamUrl, readRaw } from './support/sse.mjs';
import { eventsOf, cursorOf } from './support/http.mjs';
import { subscriber, publisher, token, newTenant, channelOf } from './support/tokens.mjs';
import { loadOpenApi } from './support/openapi.mjs';

const api = loadOpenApi();
const exercised = new Set();

/** Sends a request, checks the response against the document, returns it. */
async function call(base, method, pathName, { query = '', headers = {}, body, path = pathName } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  try {
    const res = await fetch(`${new URL(path, base)}${query}`, { method, headers, body, signal: controller.signal });
    // A stream is cut after its headers: the body never ends.
    const text = res.headers.get('content-type')?.startsWith('text/event-stream') ? '' : await res.text();
    api.checkResponse(method, pathName, { status: res.status, headers: res.headers, text });
    exercised.add(`${method} ${pathName} ${res.status}`);
    return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/** A JSON request with these extra headers. */
const json = (value, headers = {}) => ({ headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const channelsQuery = (channels, extra = {}) => {
  const params = new URLSearchParams();
  for (const c of channels) params.append('channel', c);
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  return `?${params}`;
};

describe('docs/openapi.yaml', () => {
  it('is OpenAPI 3.1 with resolvable references and examples that match their schemas', () => {
    assert.match(api.doc.openapi, /^3\.1\.\d+$/);
    const walk = (node, at) => {
      if (Array.isArray(node)) node.forEach((n, i) => walk(n, `${at}/${i}`));
      else if (node && typeof node === 'object') {
        if (typeof node.$ref === 'string') assert.ok(api.resolve(node), `${at}: ${node.$ref}`);
        for (const [k, v] of Object.entries(node)) walk(v, `${at}/${k}`);
      }
    };
    walk(api.doc, '#');
    for (const [method, p] of api.operations()) {
      const op = api.doc.paths[p][method.toLowerCase()];
      assert.ok(op.operationId, `${method} ${p} has an operationId`);
      assert.ok(Object.keys(op.responses).length > 0, `${method} ${p} has responses`);
    }
    for (const [name, schema] of Object.entries(api.doc.components.schemas)) {
      for (const example of schema.examples ?? []) {
        assert.deepEqual(api.validateSchema(name, example), [], `${name} example ${example}`);
      }
    }
    // The schemas reject what the relay refuses.
    assert.notDeepEqual(api.validateSchema('Channel', 'scan-progress:NOT-A-UUID:x'), []);
    assert.notDeepEqual(api.validateSchema('EventType', 'stream-open'), []);
    assert.notDeepEqual(api.validateSchema('PublishBatch', { events: [] }), []);
  });
});

describe('the running worker matches docs/openapi.yaml', () => {
  let worker;
  let unconfigured;
  let quotas;
  before(async () => {
    [worker, unconfigured, quotas] = await Promise.all([
      startWorker({
        vars: { JWT_LEEWAY_SECONDS: '0', PRESENCE_PREFIXES: 'chat' },
        handleStructuredLogs: logCollector().handleStructuredLogs,
      }),
      startWorker({ vars: { JWT_SECRET: '' }, handleStructuredLogs: logCollector().handleStructuredLogs }),
      startWorker({
        vars: { MAX_STREAMS_PER_TENANT: '1', PUBLISH_QUOTA_PERIOD_SECONDS: '60' },
        ratelimits: { PUBLISH_QUOTA: { simple: { limit: 1, period: 60 } } },
      }),
    ]);
  });
  after(async () => {
    await worker?.stop();
    await unconfigured?.stop();
    await quotas?.stop();
  });

  it('429 quota_exceeded on GET /v1/stream and POST /v1/publish', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const held = new AbortController();
    const res = await fetch(`${new URL('/v1/stream', quotas.url)}${channelsQuery([channel])}`, { headers: bearer(await subscriber(tenant)), signal: held.signal });
    try {
      assert.equal(res.status, 200);
      const over = await call(quotas.url, 'GET', '/v1/stream', { query: channelsQuery([channel]), headers: bearer(await subscriber(tenant)) });
      assert.equal(over.status, 429, over.text);
      assert.equal(over.json.code, 'quota_exceeded');
    } finally {
      held.abort();
    }
    const single = json({ channel, event: 'scan.progress', data: 1 }, bearer(await publisher(tenant)));
    const statuses = [];
    for (let i = 0; i < 2; i++) statuses.push((await call(quotas.url, 'POST', '/v1/publish', single)).status);
    // Two publishes against a limit of one per minute: the second is refused
    // (or, across the limiter's window, both pass and a third is).
    if (!statuses.includes(429)) statuses.push((await call(quotas.url, 'POST', '/v1/publish', single)).status);
    assert.ok(statuses.includes(429), `${statuses}`);
  });

  it('GET /healthz', async () => {
    assert.equal((await call(worker.url, 'GET', '/healthz')).status, 200);
    assert.equal((await call(unconfigured.url, 'GET', '/healthz')).status, 503);
  });

  it('GET /v1/stream: the stream, its headers and every refusal', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const sub = await subscriber(tenant);
    assert.equal((await call(worker.url, 'GET', '/v1/stream', { query: channelsQuery([channel], { access_token: sub }) })).status, 200);
    assert.equal((await call(worker.url, 'GET', '/v1/stream', { query: channelsQuery([channel]), headers: bearer(sub) })).status, 200);

    const refusals = [
      [400, 'invalid_channel', { query: channelsQuery(['nope']), headers: bearer(sub) }],
      [400, 'no_channels', { query: '', headers: bearer(sub) }],
      [400, 'too_many_channels', { query: channelsQuery([1, 2, 3, 4, 5, 6].map((i) => channelOf(tenant, `r${i}`))), headers: bearer(sub) }],
      [400, 'invalid_cursor', { query: channelsQuery([channel]), headers: { ...bearer(sub), 'Last-Event-ID': 'garbage' } }],
      [401, 'missing_credentials', { query: channelsQuery([channel]) }],
      [401, 'invalid_token', { query: channelsQuery([channel]), headers: bearer('not.a.jwt') }],
      [403, 'channel_forbidden', { query: channelsQuery([channelOf(newTenant())]), headers: bearer(sub) }],
      [403, 'tenant_missing', { query: channelsQuery([channel]), headers: bearer(await token({})) }],
      [403, 'jurisdiction_mismatch', { query: channelsQuery([channel]), headers: bearer(await subscriber(tenant, { jurisdiction: 'eu' })) }],
    ];
    for (const [status, code, request] of refusals) {
      const r = await call(worker.url, 'GET', '/v1/stream', request);
      assert.equal(r.status, status, `${code}: ${r.text}`);
      assert.equal(r.json.code, code);
    }
    assert.equal((await call(unconfigured.url, 'GET', '/v1/stream', { query: channelsQuery([channel]), headers: bearer(sub) })).status, 503);
  });

  it("the relay's frames match their schemas", async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: 1 } });
    // stream-open, then the current state with a real cursor.
    const opened = await readRaw(streamUrl(worker.url, [channel, channelOf(tenant, 'other')]), {
      headers: bearer(await subscriber(tenant)),
      done: (t) => t.includes('"pct":1'),
    });
    const [open, state] = eventsOf(opened.text);
    assert.equal(open.event, 'stream-open');
    assert.deepEqual(api.validateSchema('StreamOpen', JSON.parse(open.data)), []);
    assert.deepEqual(api.validateSchema('Cursor', state.id), [], state.id);
    assert.deepEqual(api.validateSchema('EventType', state.event), []);

    // stream-reset: a resume point ahead of the channel.
    const reset = await readRaw(streamUrl(worker.url, [channel]), {
      headers: { ...bearer(await subscriber(tenant)), 'Last-Event-ID': cursorOf([[channel, 99]]) },
      done: (t) => t.includes('event: stream-reset'),
    });
    const resetFrame = eventsOf(reset.text).find((e) => e.event === 'stream-reset');
    assert.deepEqual(api.validateSchema('StreamReset', JSON.parse(resetFrame.data)), []);

    // stream-error: the token expires while the stream is open.
    const shortLived = await subscriber(tenant, { exp: Math.floor(Date.now() / 1000) + 1 });
    const expired = await readRaw(streamUrl(worker.url, [channel]), {
      headers: bearer(shortLived),
      done: (t) => /event: stream-error\ndata: .*\n\n/.test(t),
      timeoutMs: 5_000,
    });
    const errorFrame = eventsOf(expired.text).find((e) => e.event === 'stream-error');
    assert.ok(errorFrame, expired.text);
    const error = JSON.parse(errorFrame.data);
    assert.deepEqual(api.validateSchema('StreamError', error), []);
    assert.equal(error.code, 'token_expired');
  });

  it('POST /v1/publish: accepted bodies match the request schema, refusals are documented', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const requestSchema = api.doc.paths['/v1/publish'].post.requestBody.content['application/json'].schema;
    const single = { channel, event: 'scan.progress', data: { pct: 5 }, idempotency_key: 'k-1' };
    const batch = { events: [{ channel, event: 'scan.progress', data: { pct: 6 } }, { channel, event: 'scan.completed', data: null }] };
    for (const body of [single, single, batch]) {
      const matches = requestSchema.oneOf.filter((s) => api.validateSchema(s.$ref.split('/').pop(), body).length === 0);
      assert.equal(matches.length, 1, `the body matches exactly one documented form: ${JSON.stringify(body)}`);
      const r = await call(worker.url, 'POST', '/v1/publish', json(body, bearer(pub)));
      assert.equal(r.status, 202, r.text);
    }

    const big = 'x'.repeat(70_000);
    const refusals = [
      [400, 'invalid_body', json({ channel, event: 'scan.progress' }, bearer(pub))],
      [400, 'invalid_channel', json({ channel: 'bad', event: 'a.b', data: 1 }, bearer(pub))],
      [400, 'batch_too_large', json({ events: Array.from({ length: 101 }, () => ({ channel, event: 'a.b', data: 1 })) }, bearer(pub))],
      [401, 'missing_credentials', json(single)],
      [403, 'insufficient_scope', json(single, bearer(await subscriber(tenant)))],
      [403, 'channel_forbidden', json({ ...single, channel: channelOf(newTenant()) }, bearer(pub))],
      [413, 'event_too_large', json({ channel, event: 'a.b', data: big }, bearer(pub))],
      [415, 'unsupported_media_type', { headers: { ...bearer(pub), 'Content-Type': 'text/plain' }, body: JSON.stringify(single) }],
    ];
    for (const [status, code, request] of refusals) {
      const r = await call(worker.url, 'POST', '/v1/publish', request);
      assert.equal(r.status, status, `${code}: ${r.text}`);
      assert.equal(r.json.code, code);
    }
    assert.equal((await call(unconfigured.url, 'POST', '/v1/publish', json(single, bearer(pub)))).status, 503);
  });

  it('POST /v1/tickets and redeeming a ticket', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const sub = await subscriber(tenant);
    const issued = await call(worker.url, 'POST', '/v1/tickets', json({ channels: [channel] }, bearer(sub)));
    assert.equal(issued.status, 201, issued.text);
    assert.deepEqual(api.validateSchema('TicketRequest', { channels: [channel] }), []);
    const opened = await call(worker.url, 'GET', '/v1/stream', { query: `?ticket=${issued.json.ticket}` });
    assert.equal(opened.status, 200);
    const refusals = [
      [400, 'invalid_body', json({}, bearer(sub))],
      [401, 'missing_credentials', json({ channels: [channel] })],
      [403, 'channel_forbidden', json({ channels: [channelOf(newTenant())] }, bearer(sub))],
    ];
    for (const [status, code, request] of refusals) {
      const r = await call(worker.url, 'POST', '/v1/tickets', request);
      assert.equal(r.status, status, `${code}: ${r.text}`);
      assert.equal(r.json.code, code);
    }
    const used = await call(worker.url, 'GET', '/v1/stream', { query: `?ticket=${issued.json.ticket}` });
    assert.equal(used.status, 401);
  });

  it('POST /v1/admin/kick', async () => {
    const tenant = newTenant();
    const admin = await token({ scope: 'events:admin events:platform' });
    const body = { tenant, user: 'user-1', ttl_seconds: 60 };
    assert.deepEqual(api.validateSchema('KickRequest', body), []);
    assert.notDeepEqual(api.validateSchema('KickRequest', { tenant, user: 'a', jti: 'b' }), []);
    const kicked = await call(worker.url, 'POST', '/v1/admin/kick', json(body, bearer(admin)));
    assert.equal(kicked.status, 200, kicked.text);
    const refusals = [
      [400, 'invalid_body', json({ tenant: 'x' }, bearer(admin))],
      [401, 'missing_credentials', json(body)],
      [403, 'insufficient_scope', json(body, bearer(await subscriber(tenant)))],
      [403, 'platform_only', json(body, bearer(await token({ tenant_id: tenant, scope: 'events:admin' })))],
    ];
    for (const [status, code, request] of refusals) {
      const r = await call(worker.url, 'POST', '/v1/admin/kick', request);
      assert.equal(r.status, status, `${code}: ${r.text}`);
      assert.equal(r.json.code, code);
    }
    // The kicked user is refused on a new stream.
    const refused = await call(worker.url, 'GET', '/v1/stream', {
      query: channelsQuery([channelOf(tenant)]),
      headers: bearer(await subscriber(tenant)),
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.json.code, 'revoked');
  });

  it('GET /v1/channels/{channel}', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const path = `/v1/channels/${encodeURIComponent(channel)}`;
    const stats = (headers, at = path) => call(worker.url, 'GET', '/v1/channels/{channel}', { path: at, headers });
    const empty = await stats(bearer(await subscriber(tenant)));
    assert.equal(empty.status, 200, empty.text);
    assert.deepEqual(empty.json, { channel, streams: 0, last_id: null, last_event_at: null, history: 0 });
    assert.equal((await publish(worker.url, await publisher(tenant), { channel, event: 'x.y', data: 1 })).status, 202);
    const after = await stats(bearer(await subscriber(tenant)));
    assert.equal(after.json.last_id, 1);
    assert.equal(after.json.history, 1);
    const refusals = [
      [400, 'invalid_channel', bearer(await subscriber(tenant)), '/v1/channels/nope'],
      [401, 'missing_credentials', {}, path],
      [403, 'channel_forbidden', bearer(await subscriber(newTenant())), path],
    ];
    for (const [status, code, headers, at] of refusals) {
      const r = await stats(headers, at);
      assert.equal(r.status, status, `${code}: ${r.text}`);
      assert.equal(r.json.code, code);
    }
  });

  it('GET /v1/channels/{channel}/presence', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'room-1', 'chat');
    const sub = await subscriber(tenant, { sub: 'alice' });
    const path = `/v1/channels/${encodeURIComponent(channel)}/presence`;
    const opened = await readRaw(streamUrl(worker.url, [channel]), {
      headers: bearer(sub),
      done: (t) => eventsOf(t).some((e) => e.event === 'presence.joined'),
      timeoutMs: 10_000,
    });
    const [joined] = eventsOf(opened.text).filter((e) => e.event === 'presence.joined');
    assert.ok(joined, opened.text);
    assert.deepEqual(api.validateSchema('PresenceEvent', JSON.parse(joined.data)), []);
    const present = await call(worker.url, 'GET', '/v1/channels/{channel}/presence', { path, headers: bearer(sub) });
    assert.equal(present.status, 200, present.text);
    assert.equal(present.json.channel, channel);

    const plain = `/v1/channels/${encodeURIComponent(channelOf(tenant))}/presence`;
    for (const [status, code, request] of [
      [400, 'invalid_channel', { path: '/v1/channels/nope/presence', headers: bearer(sub) }],
      [401, 'missing_credentials', { path }],
      [403, 'channel_forbidden', { path, headers: bearer(await subscriber(newTenant())) }],
      [404, 'presence_disabled', { path: plain, headers: bearer(sub) }],
    ]) {
      const r = await call(worker.url, 'GET', '/v1/channels/{channel}/presence', request);
      assert.equal(r.status, status, `${code}: ${r.text}`);
      assert.equal(r.json.code, code);
    }
  });

  it('OPTIONS preflights', async () => {
    const headers = { Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'GET' };
    assert.equal((await call(worker.url, 'OPTIONS', '/v1/stream', { headers })).status, 204);
    assert.equal((await call(worker.url, 'OPTIONS', '/v1/publish', { headers })).status, 204);
    assert.equal((await call(worker.url, 'OPTIONS', '/v1/tickets', { headers })).status, 204);
  });

  it('every documented operation was exercised', () => {
    for (const [method, p] of api.operations()) {
      assert.ok([...exercised].some((e) => e.startsWith(`${method} ${p} `)), `${method} ${p} was not exercised`);
    }
  });
});
