// Hardening: one test per attack on the running worker in workerd, each
// named for what it tries. What other files already attack is not repeated
// here: forged tokens (forgery.test.mjs), tokens of 8,192 and 8,193 bytes
// (auth.test.mjs), JWKS redirects, floods and stalls (keys.test.mjs),
// renamed-claim streams (claims.test.mjs), tenant-less streams and tickets
// (tenant.test.mjs, access.test.mjs). docs/security.md lists which test
// covers which attack.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { startWorker, logCollector } from './support/worker.mjs';
import { token, subscriber, publisher, platformPublisher, newTenant, channelOf } from './support/tokens.mjs';
import { publish, streamUrl } from './support/sse.mjs';
import { assertProblem, openStream, rawStream, eventsOf, channelStats, quote, cursorOf, PROBLEM_TYPE } from './support/http.mjs';

/** The event size limit of the shared worker; a publish body may be 2 × 100 × this. */
const MAX_EVENT_BYTES = 4096;
const PUBLISH_BODY_BYTES = 100 * MAX_EVENT_BYTES * 2;
const SMALL_BODY_BYTES = 16 * 1024;
const ALLOWED_ORIGIN = 'https://app.example';
/** The current state a channel keeps: the latest event of at most this many types (core/src/history.rs). */
const MAX_STATE_TYPES = 64;

let worker;
let base;
let kv;
let admin;
const logs = logCollector();

const VARS = {
  MAX_EVENT_BYTES: String(MAX_EVENT_BYTES),
  ALLOWED_ORIGINS: ALLOWED_ORIGIN,
  DEV_MODE: '1',
  API_KEY_RECHECK_SECONDS: '1',
};

before(async () => {
  worker = await startWorker({ vars: VARS, kvNamespaces: ['API_KEYS'], handleStructuredLogs: logs.handleStructuredLogs });
  base = worker.url;
  kv = await worker.mf.getKVNamespace('API_KEYS');
  admin = await token({ scope: 'events:admin events:platform' });
});
after(async () => {
  await worker?.stop();
});

// Every request of this file goes on a connection of its own. The local
// runtime now and then closes a kept-alive connection that a refused request
// came back on, under the client's next request on it ("other side closed"):
// how the local server handles connections, not what the relay answers, and
// no test here may depend on it.
const fetchOnKeptAlive = globalThis.fetch;
globalThis.fetch = (input, init = {}) =>
  fetchOnKeptAlive(input, { ...init, headers: { ...Object.fromEntries(new Headers(init.headers)), Connection: 'close' } });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const json = { 'Content-Type': 'application/json' };
const bearer = (jwt) => ({ Authorization: `Bearer ${jwt}` });

/** POST with a JSON body (or a string as it is); returns the Response. */
const post = (route, body, headers = {}) =>
  fetch(new URL(route, base), {
    method: 'POST',
    headers: { ...json, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/**
 * Stores an API key record as `npm run api-key` would have it stored, and
 * returns the key and its fingerprint. The record is written as it stands,
 * so a key made before a check existed can be tried too.
 */
async function provisionKey(record) {
  const key = `es_${randomBytes(32).toString('base64url')}`;
  const fingerprint = createHash('sha256').update(key).digest('hex');
  await kv.put(fingerprint, JSON.stringify(record));
  return { key, fingerprint, auth: { Authorization: `Api-Key ${key}` } };
}

/** Waits for `check()` to come true, polling; fails after `ms` saying `what`. */
async function eventually(check, what, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const last = await check();
    if (last === true) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(200);
  }
}

/** The id the channel gave its last event, 0 if it has none. */
const lastId = async (channel) => (await channelStats(base, channel, `Bearer ${admin}`)).last_id ?? 0;

/**
 * POSTs a body with node:http on a connection of its own, closed after the
 * answer. `chunked` sends it in chunks without Content-Length (chunked
 * transfer coding), so only what the worker counts can stop it; with `hold`
 * the body is never finished, and the answer has to come while the client is
 * still sending.
 */
function sendBody(url, { headers = {}, body, chunked = true, hold = false, chunkBytes = 16 * 1024 }) {
  return new Promise((resolve, reject) => {
    let answered = false;
    const framing = chunked ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': String(Buffer.byteLength(body)) };
    const req = http.request(url, { method: 'POST', agent: false, headers: { ...headers, ...framing } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        answered = true;
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode, headers: new Headers(Object.entries(res.headers).map(([k, v]) => [k, String(v)])), text });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within 20 s to a ${hold ? 'still unfinished ' : ''}body of ${body.length} bytes`));
    }, 20_000);
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    const bytes = Buffer.from(body);
    for (let at = 0; at < bytes.length; at += chunkBytes) req.write(bytes.subarray(at, at + chunkBytes));
    if (!hold) req.end();
  });
}

/** `text` padded with trailing spaces (still the same JSON) to exactly `bytes` bytes. */
const padTo = (text, bytes) => {
  assert.ok(Buffer.byteLength(text) <= bytes, `${Buffer.byteLength(text)} > ${bytes}`);
  return text + ' '.repeat(bytes - Buffer.byteLength(text));
};

describe('idempotency keys', () => {
  // Every visible ASCII character, the JSON and SQL metacharacters among them.
  const VISIBLE = Array.from({ length: 0x7e - 0x20 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
  const KEYS = [
    'quote"inside',
    'back\\slash',
    '\\"',
    '"',
    '\\',
    "';DROP/**/TABLE/**/events;--",
    '%s%n{}[]',
    '\\u0000',
    VISIBLE,
    `${VISIBLE.slice(0, 34)}"\\`.padEnd(128, '~'),
  ];

  test('keys with " and \\ (and every other visible character) are stored once and replayed as duplicates', async () => {
    const tenant = newTenant();
    const [a, b] = [channelOf(tenant, 'a'), channelOf(tenant, 'b')];
    const pub = await publisher(tenant);
    const events = KEYS.map((key, i) => ({ channel: i % 2 ? b : a, event: 'job.step', data: { i }, idempotency_key: key }));
    const first = await publish(base, pub, { events });
    assert.equal(first.status, 202, first.text);
    assert.ok(first.body.results.every((r) => !r.duplicate));
    // Every key again, one by one and as a batch: the original ids, nothing new stored.
    for (const [i, event] of events.entries()) {
      const again = await publish(base, pub, event);
      assert.equal(again.status, 202, again.text);
      assert.deepEqual(again.body.results, [{ ...first.body.results[i], duplicate: true }], JSON.stringify(event.idempotency_key));
    }
    const batch = await publish(base, pub, { events });
    assert.equal(batch.status, 202, batch.text);
    assert.deepEqual(batch.body.results, first.body.results.map((r) => ({ ...r, duplicate: true })));
    assert.equal(await lastId(a), KEYS.length / 2);
    assert.equal(await lastId(b), KEYS.length / 2);
    // And the events are there to read, data intact.
    const s = await rawStream(streamUrl(base, [a], { lastEventId: cursorOf([[a, 0]]) }), { headers: bearer(await subscriber(tenant)) });
    try {
      await s.until((t) => eventsOf(t).filter((e) => e.event === 'job.step').length === KEYS.length / 2, 10_000, 'the stored events');
      assert.deepEqual(
        eventsOf(s.text).filter((e) => e.event === 'job.step').map((e) => JSON.parse(e.data).i),
        KEYS.map((_, i) => i).filter((i) => i % 2 === 0),
      );
    } finally {
      await s.close();
    }
  });

  test('a batch over three channels with one bad event stores nothing in any of them', async () => {
    const tenant = newTenant();
    const channels = [channelOf(tenant, 'one'), channelOf(tenant, 'two'), channelOf(tenant, 'three')];
    const pub = await publisher(tenant);
    const good = (channel, n) => ({ channel, event: 'job.step', data: { n }, idempotency_key: `k-${n}` });
    const badEvents = [
      [400, 'invalid_body', { ...good(channels[2], 9), idempotency_key: 'tab\there' }],
      [400, 'invalid_body', { ...good(channels[2], 9), idempotency_key: 'caf\u00e9' }],
      [400, 'invalid_body', { ...good(channels[2], 9), idempotency_key: 'k'.repeat(129) }],
      [400, 'invalid_body', { ...good(channels[2], 9), event: 'stream-open' }],
      [400, 'invalid_channel', { ...good(channels[2], 9), channel: `scan-progress:${tenant}` }],
      [403, 'channel_forbidden', { ...good(channelOf(newTenant()), 9) }],
      [413, 'event_too_large', { ...good(channels[2], 9), data: 'x'.repeat(MAX_EVENT_BYTES + 1) }],
    ];
    for (const [status, code, bad] of badEvents) {
      for (const at of [0, 3, 6]) {
        const events = [good(channels[0], 1), good(channels[1], 2), good(channels[2], 3), good(channels[0], 4), good(channels[1], 5), good(channels[2], 6)];
        events.splice(at, 0, bad);
        const res = await post('/v1/publish', { events }, bearer(pub));
        await assertProblem(res, status, code);
      }
    }
    for (const channel of channels) assert.equal(await lastId(channel), 0, channel);
    // The same batch without the bad event is stored whole.
    const ok = await publish(base, pub, { events: [good(channels[0], 1), good(channels[1], 2), good(channels[2], 3)] });
    assert.equal(ok.status, 202, ok.text);
    for (const channel of channels) assert.equal(await lastId(channel), 1, channel);
  });
});

describe('request bodies', () => {
  // Straight to workerd, without miniflare's entry worker, which re-streams
  // request bodies and would stand between the client and the limits.
  let direct;
  /** Each endpoint that reads a body, with a credential it accepts and a body it accepts. */
  let endpoints;
  const send = (route, options) => sendBody(new URL(route, direct.url), options);
  before(async () => {
    direct = await startWorker({ direct: true, vars: VARS, handleStructuredLogs: logCollector().handleStructuredLogs });
    const tenant = newTenant();
    const channel = channelOf(tenant);
    endpoints = [
      { route: '/v1/tickets', limit: SMALL_BODY_BYTES, headers: { ...json, ...bearer(await subscriber(tenant)) }, body: { channels: [channel] }, ok: 201 },
      { route: '/v1/admin/kick', limit: SMALL_BODY_BYTES, headers: { ...json, ...bearer(admin) }, body: { tenant }, ok: 200 },
      { route: '/dev/token', limit: SMALL_BODY_BYTES, headers: json, body: { tenant, publish: false }, ok: 200 },
      {
        route: '/v1/publish',
        limit: PUBLISH_BODY_BYTES,
        headers: { ...json, ...bearer(await publisher(tenant)) },
        body: { channel, event: 'job.step', data: 1 },
        ok: 202,
      },
    ];
  });
  after(() => direct?.stop());

  test('a body of exactly the limit is read, chunked; one byte more is 413 body_too_large', async () => {
    for (const { route, limit, headers, body, ok } of endpoints) {
      const exact = await send(route, { headers, body: padTo(JSON.stringify(body), limit) });
      assert.equal(exact.status, ok, `${route} at ${limit} bytes: ${exact.status} ${exact.text.slice(0, 300)}`);
      const over = await send(route, { headers, body: padTo(JSON.stringify(body), limit + 1) });
      await assertProblem(over, 413, 'body_too_large', { text: over.text });
    }
  });

  test('a chunked body that never ends is refused as soon as it passes the limit', async () => {
    for (const { route, limit, headers, body } of endpoints) {
      const res = await send(route, { headers, body: padTo(JSON.stringify(body), limit + 1), hold: true });
      await assertProblem(res, 413, 'body_too_large', { text: res.text });
    }
  });

  test('a declared Content-Length over the limit is refused before the body is read', async () => {
    for (const { route, limit, headers, body } of endpoints) {
      const res = await send(route, { headers, body: padTo(JSON.stringify(body), limit + 1), chunked: false });
      await assertProblem(res, 413, 'body_too_large', { text: res.text });
    }
  });

  test('after all of that the worker keeps serving', async () => {
    assert.equal((await fetch(new URL('/healthz', direct.url))).status, 200);
    for (const { route, headers, body, ok } of endpoints) {
      const res = await fetch(new URL(route, direct.url), { method: 'POST', headers, body: JSON.stringify(body) });
      assert.equal(res.status, ok, `${route}: ${await res.text()}`);
    }
  });
});

describe('kicks', () => {
  // A user of this tenant has padded its list of channels with throw-away
  // ones that sort before the real channel, more than one sweep's worth
  // (300 channels; the tenant object's alarm sweeps the rest).
  const PADDING = 305;
  let tenant;
  let real;
  before(async () => {
    tenant = newTenant();
    real = channelOf(tenant, 'real', 'zz-real');
    const pad = await publisher(tenant, { sub: 'mallory' });
    const names = Array.from({ length: PADDING }, (_, i) => channelOf(tenant, `pad-${i}`, 'aa-pad'));
    await Promise.all(
      Array.from({ length: Math.ceil(PADDING / 100) }, async (_, part) => {
        const events = names.slice(part * 100, part * 100 + 100).map((channel) => ({ channel, event: 'pad.added', data: 0 }));
        const res = await publish(base, pad, { events });
        assert.equal(res.status, 202, res.text);
      }),
    );
  });

  const kick = (body) => post('/v1/admin/kick', body, bearer(admin));
  const errorOf = (text) => eventsOf(text).find((e) => e.event === 'stream-error');

  test("a kick ends the real stream of a user who padded the tenant's channel list, and bystanders still receive", async () => {
    const mallory = await rawStream(streamUrl(base, [real]), { headers: bearer(await subscriber(tenant, { sub: 'mallory' })) });
    const bob = await rawStream(streamUrl(base, [real]), { headers: bearer(await subscriber(tenant, { sub: 'bob' })) });
    try {
      await Promise.all([mallory.opened(), bob.opened()]);
      const res = await kick({ tenant, user: 'mallory', ttl_seconds: 60 });
      assert.equal(res.status, 200);
      const report = await res.json();
      assert.ok(report.channels > PADDING, JSON.stringify(report));
      await mallory.until((t) => errorOf(t), 30_000, "mallory's stream-error");
      assert.equal(JSON.parse(errorOf(mallory.text).data).code, 'kicked');
      const later = await publish(base, await publisher(tenant), { channel: real, event: 'job.done', data: 'after the kick' });
      assert.equal(later.status, 202, later.text);
      await bob.until((t) => eventsOf(t).some((e) => e.event === 'job.done'), 10_000, "bob's later event");
      assert.equal(errorOf(bob.text), undefined);
    } finally {
      await Promise.all([mallory.close(), bob.close()]);
    }
  });

  test('streams attaching while a kick runs are all ended or refused', async () => {
    const eve = await subscriber(tenant, { sub: 'eve' });
    const attempts = [];
    let kicked = false;
    const kicking = kick({ tenant, user: 'eve', ttl_seconds: 60 }).then(async (res) => {
      assert.equal(res.status, 200, await res.text());
      kicked = true;
    });
    // Streams on the real channel and on channels nobody used yet, opened
    // one after another until a little after the kick has answered.
    for (let i = 0; !kicked || i < 4; i++) {
      const channel = i % 2 ? real : channelOf(tenant, `eve-${i}`, 'mm-eve');
      attempts.push(
        fetch(streamUrl(base, [channel]), { headers: bearer(eve) }).then(async (res) => {
          if (res.status !== 200) return { status: res.status, code: (await res.json()).code };
          const reader = res.body.getReader();
          let text = '';
          const decoder = new TextDecoder();
          const timer = setTimeout(() => reader.cancel(), 30_000);
          for (;;) {
            const { value, done } = await reader.read().catch(() => ({ done: true }));
            if (done) break;
            text += decoder.decode(value, { stream: true });
            if (errorOf(text)) break;
          }
          clearTimeout(timer);
          await reader.cancel().catch(() => {});
          return { status: 200, code: errorOf(text) ? JSON.parse(errorOf(text).data).code : 'still open after 30 s' };
        }),
      );
      await sleep(50);
      if (i > 200) break;
    }
    await kicking;
    const outcomes = await Promise.all(attempts);
    const survivors = outcomes.filter((o) => !(o.status === 403 && o.code === 'revoked') && !(o.status === 200 && o.code === 'kicked'));
    assert.deepEqual(survivors, [], JSON.stringify(outcomes));
    assert.ok(outcomes.some((o) => o.status === 403), 'some attempts came after the revocation');
  });
});

describe('credentials without a tenant', () => {
  test('a tenant-less publisher without events:platform gets 403 tenant_missing on publish', async () => {
    const channel = channelOf(newTenant());
    for (const scope of ['events:publish', 'events:publish events:admin']) {
      const res = await post('/v1/publish', { channel, event: 'job.step', data: 1 }, bearer(await token({ scope })));
      await assertProblem(res, 403, 'tenant_missing');
    }
    assert.equal(await lastId(channel), 0);
  });

  test('an API key stored without tenant and without events:platform gets 403 tenant_missing everywhere', async () => {
    const channel = channelOf(newTenant());
    const { auth } = await provisionKey({ name: 'forgot-the-tenant', scope: 'events:publish' });
    await assertProblem(await post('/v1/publish', { channel, event: 'job.step', data: 1 }, auth), 403, 'tenant_missing');
    await assertProblem(await post('/v1/tickets', { channels: [channel] }, auth), 403, 'tenant_missing');
    const stream = await openStream(base, [channel], { headers: auth });
    await assertProblem(stream.res, 403, 'tenant_missing', { text: stream.text });
    assert.equal(await lastId(channel), 0);
    // With the platform scope the same key publishes anywhere (and still may not subscribe).
    const platform = await provisionKey({ name: 'bridge', scope: 'events:publish events:platform' });
    const ok = await post('/v1/publish', { channel, event: 'job.step', data: 1 }, platform.auth);
    assert.equal(ok.status, 202, await ok.text());
  });

  describe('with TENANT_CLAIM renamed', () => {
    let renamed;
    before(async () => {
      renamed = await startWorker({ vars: { TENANT_CLAIM: 'org_id' }, handleStructuredLogs: logCollector().handleStructuredLogs });
    });
    after(() => renamed?.stop());

    test('a publisher whose tenant is in the old claim gets 403 tenant_missing on publish and tickets', async () => {
      const tenant = newTenant();
      const channel = channelOf(tenant);
      const old = await token({ tenant_id: tenant, scope: 'events:publish' });
      const publishing = await fetch(new URL('/v1/publish', renamed.url), {
        method: 'POST',
        headers: { ...json, ...bearer(old) },
        body: JSON.stringify({ channel, event: 'job.step', data: 1 }),
      });
      await assertProblem(publishing, 403, 'tenant_missing');
      const ticket = await fetch(new URL('/v1/tickets', renamed.url), {
        method: 'POST',
        headers: { ...json, ...bearer(old) },
        body: JSON.stringify({ channels: [channel] }),
      });
      await assertProblem(ticket, 403, 'tenant_missing');
      // The renamed claim works.
      const ok = await publish(renamed.url, await token({ org_id: tenant, scope: 'events:publish' }), { channel, event: 'job.step', data: 1 });
      assert.equal(ok.status, 202, ok.text);
      assert.deepEqual(ok.body.results, [{ channel, id: 1, duplicate: false }]);
    });
  });
});

describe('revocation', () => {
  test('a revoked user loses publishing and tickets, and is readmitted when the revocation ends', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const fresh = channelOf(tenant, 'never-used');
    const alice = await publisher(tenant, { sub: 'alice' });
    const carol = await publisher(tenant, { sub: 'carol' });
    const send = (jwt, to = channel) => post('/v1/publish', { channel: to, event: 'job.step', data: 1 }, bearer(jwt));
    const ticket = (jwt, to = channel) => post('/v1/tickets', { channels: [to] }, bearer(jwt));
    assert.equal((await send(alice)).status, 202);
    const res = await post('/v1/admin/kick', { tenant, user: 'alice', ttl_seconds: 2 }, bearer(admin));
    assert.equal(res.status, 200, await res.text());
    const stored = await lastId(channel);
    // Refused on the channel that has seen her, and on one that has not.
    for (const to of [channel, fresh]) {
      await assertProblem(await send(alice, to), 403, 'revoked');
      await assertProblem(await ticket(alice, to), 403, 'revoked');
    }
    assert.equal(await lastId(channel), stored);
    assert.equal(await lastId(fresh), 0);
    // Others of the tenant are not.
    assert.equal((await send(carol)).status, 202);
    assert.equal((await ticket(carol)).status, 201);
    // Until the revocation ends: every answer meanwhile is 403 revoked.
    await eventually(async () => {
      const r = await send(alice);
      if (r.status === 202) return true;
      await assertProblem(r, 403, 'revoked');
      return r.status;
    }, 'alice readmitted to publish');
    assert.equal((await ticket(alice, fresh)).status, 201);
  });

  test('a revoked token (jti) loses publishing; the same user with another token keeps it', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const jti = randomUUID();
    const stolen = await publisher(tenant, { sub: 'dave', jti });
    const other = await publisher(tenant, { sub: 'dave', jti: randomUUID() });
    const send = (jwt) => post('/v1/publish', { channel, event: 'job.step', data: 1 }, bearer(jwt));
    assert.equal((await send(stolen)).status, 202);
    assert.equal((await post('/v1/admin/kick', { tenant, jti, ttl_seconds: 60 }, bearer(admin))).status, 200);
    await assertProblem(await send(stolen), 403, 'revoked');
    assert.equal((await send(other)).status, 202);
  });
});

describe('API keys', () => {
  test('a deleted API key ends its live streams with stream-error revoked', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const { auth, fingerprint } = await provisionKey({ name: 'dashboard', tenant, scope: '' });
    const direct = await rawStream(streamUrl(base, [channel]), { headers: auth });
    const issued = await post('/v1/tickets', { channels: [channel] }, auth);
    assert.equal(issued.status, 201);
    const viaTicket = await rawStream(streamUrl(base, [], { ticket: (await issued.json()).ticket }));
    try {
      await Promise.all([direct.opened(), viaTicket.opened()]);
      // While the key exists, rechecks (every second here) leave the streams alone.
      await sleep(3000);
      const kept = await publish(base, await publisher(tenant), { channel, event: 'job.step', data: 'still here' });
      assert.equal(kept.status, 202, kept.text);
      for (const s of [direct, viaTicket]) {
        await s.until((t) => t.includes('still here'), 10_000, 'an event while the key exists');
        assert.ok(!s.ended);
      }
      await kv.delete(fingerprint);
      for (const s of [direct, viaTicket]) {
        const text = await s.end(20_000);
        const last = eventsOf(text).at(-1);
        assert.equal(last.event, 'stream-error', text);
        assert.equal(JSON.parse(last.data).code, 'revoked');
      }
      const again = await openStream(base, [channel], { headers: auth });
      await assertProblem(again.res, 401, 'invalid_token', { error: 'invalid_token', text: again.text });
    } finally {
      await Promise.all([direct.close(), viaTicket.close()]);
    }
  });
});

describe('current state', () => {
  test('publishing more event types than the current state holds: a new subscriber gets the newest 64', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const TYPES = 100;
    const res = await publish(base, pub, {
      events: Array.from({ length: TYPES }, (_, i) => ({ channel, event: `kind.${i}`, data: { i } })),
    });
    assert.equal(res.status, 202, res.text);
    const stateOf = async () => {
      const s = await rawStream(streamUrl(base, [channel]), { headers: bearer(await subscriber(tenant)) });
      try {
        await s.opened();
        const marker = `marker-${randomUUID()}`;
        const live = await publish(base, pub, { channel, event: 'kind.live', data: marker });
        assert.equal(live.status, 202, live.text);
        await s.until((t) => t.includes(marker), 10_000, 'the live event');
        const events = eventsOf(s.text).filter((e) => e.event.startsWith('kind.'));
        return events.slice(0, -1).map((e) => [e.event, e.id]);
      } finally {
        await s.close();
      }
    };
    const newest = (from, to) => Array.from({ length: to - from }, (_, k) => [`kind.${from + k}`, `${quote(channel)}:${from + k + 1}`]);
    assert.deepEqual(await stateOf(), newest(TYPES - MAX_STATE_TYPES, TYPES));
    // The live marker is a type of its own now: the oldest type left makes room.
    const state = await stateOf();
    assert.equal(state.length, MAX_STATE_TYPES);
    assert.deepEqual(state.slice(0, -1), newest(TYPES - MAX_STATE_TYPES + 1, TYPES));
    assert.equal(state.at(-1)[0], 'kind.live');
  });
});

describe('Last-Event-ID', () => {
  let tenant;
  let mine;
  let theirs;
  let sub;
  before(async () => {
    tenant = newTenant();
    mine = channelOf(tenant);
    const stranger = newTenant();
    theirs = channelOf(stranger);
    sub = await subscriber(tenant);
    for (const [t, channel] of [[tenant, mine], [stranger, theirs]]) {
      const res = await publish(base, await publisher(t), {
        events: [1, 2, 3].map((n) => ({ channel, event: 'job.step', data: `${channel === mine ? 'mine' : 'theirs'}-${n}` })),
      });
      assert.equal(res.status, 202, res.text);
    }
  });

  /** The events a stream of `mine` resumed at `cursor` (header and query alike) sends up to the marker. */
  async function resumed(cursor) {
    const out = [];
    for (const options of [{ headers: { ...bearer(sub), 'Last-Event-ID': cursor } }, { query: { lastEventId: cursor }, headers: bearer(sub) }]) {
      const s = await rawStream(streamUrl(base, [mine], options.query ?? {}), { headers: options.headers });
      try {
        assert.equal(s.res.status, 200);
        await s.until((t) => t.includes('mine-3'), 10_000, 'the replay');
        out.push(eventsOf(s.text).filter((e) => e.event !== 'stream-open').map((e) => [e.event, e.id, e.data]));
      } finally {
        await s.close();
      }
    }
    assert.deepEqual(out[0], out[1], 'header and query resume alike');
    return out[0];
  }

  const replay = (from) =>
    [1, 2, 3].filter((n) => n > from).map((n) => ['job.step', `${quote(mine)}:${n}`, JSON.stringify(`mine-${n}`)]);

  test("another tenant's channel in the cursor is ignored and leaks nothing", async () => {
    assert.deepEqual(await resumed(cursorOf([[theirs, 0]])), replay(0));
    assert.deepEqual(await resumed(cursorOf([[theirs, 1], [mine, 1]])), replay(1));
    assert.deepEqual(await resumed(cursorOf([[mine, 2], [theirs, 99]])), replay(2));
  });

  test('u64::MAX as a position is a cursor ahead of the channel: stream-reset, then the current state', async () => {
    const got = await resumed(`${quote(mine)}:18446744073709551615`);
    assert.deepEqual(got[0], ['stream-reset', undefined, JSON.stringify({ channels: [mine] })]);
    assert.deepEqual(got.slice(1), replay(2));
  });

  test('malformed and oversized cursors are 400 invalid_cursor', async () => {
    const q = quote(mine);
    const pairs = (n) => Array.from({ length: n }, (_, i) => `${quote(channelOf(tenant, `r${i}`))}:1`).join(',');
    const bad = {
      'u64::MAX + 1': `${q}:18446744073709551616`,
      'a plus sign': `${q}:+1`,
      'a minus sign': `${q}:-1`,
      'no sequence': `${q}:`,
      'no separator': q,
      'a fraction': `${q}:1.5`,
      'an exponent': `${q}:1e3`,
      'spaces around the number': `${q}: 1`,
      'a bad escape': '%zz:1',
      'a truncated escape': `${q}%3:1`,
      'an escape that is not UTF-8': '%FF:1',
      'an empty channel': ':1',
      'an empty pair': `${q}:1,,${q}:2`,
      'the same channel twice': `${q}:1,${q}:2`,
      'more than 64 pairs': pairs(65),
      'over 4,096 bytes': `${q}:${'1'.repeat(4097 - q.length)}`,
      'far over 4,096 bytes': `${q}:1,`.repeat(100),
    };
    for (const [name, cursor] of Object.entries(bad)) {
      for (const options of [{ headers: { 'Last-Event-ID': cursor } }, { query: { lastEventId: cursor } }]) {
        const r = await openStream(base, [mine], { token: sub, ...options });
        assert.equal(r.status, 400, `${name}: ${r.status} ${r.text.slice(0, 200)}`);
        await assertProblem(r.res, 400, 'invalid_cursor', { text: r.text });
      }
    }
  });
});

describe('dev token and CORS', () => {
  test('/dev/token refuses any body that is not application/json with 415', async () => {
    const body = JSON.stringify({ tenant: newTenant(), publish: true });
    for (const contentType of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await fetch(new URL('/dev/token', base), { method: 'POST', headers: { 'Content-Type': contentType }, body });
      await assertProblem(res, 415, 'unsupported_media_type');
    }
    const none = await fetch(new URL('/dev/token', base), { method: 'POST', body: new TextEncoder().encode(body) });
    await assertProblem(none, 415, 'unsupported_media_type');
  });

  test('no response allows credentials, and every answer to an allowed origin exposes Retry-After', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const origin = { Origin: ALLOWED_ORIGIN };
    const responses = {
      'a stream': await openStream(base, [channel], { token: await subscriber(tenant), headers: origin }).then((r) => r.res),
      'a refused stream': await openStream(base, [channel], { headers: origin }).then((r) => r.res),
      'a publish': await post('/v1/publish', { channel, event: 'job.step', data: 1 }, { ...origin, ...bearer(await publisher(tenant)) }),
      'a ticket': await post('/v1/tickets', { channels: [channel] }, { ...origin, ...bearer(await subscriber(tenant)) }),
      'a dev token': await post('/dev/token', { tenant }, origin),
      'an unknown path': await fetch(new URL('/nope', base), { headers: origin }),
      'channel stats': await fetch(new URL(`/v1/channels/${channel}`, base), { headers: { ...origin, ...bearer(await subscriber(tenant)) } }),
    };
    for (const [name, res] of Object.entries(responses)) {
      await res.body?.cancel().catch(() => {});
      assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN, name);
      assert.equal(res.headers.get('access-control-allow-credentials'), null, name);
      const exposed = (res.headers.get('access-control-expose-headers') ?? '').toLowerCase().split(',').map((h) => h.trim());
      assert.ok(exposed.includes('retry-after') && exposed.includes('www-authenticate'), `${name}: ${exposed}`);
    }
    for (const route of ['/v1/stream', '/v1/publish', '/v1/tickets', `/v1/channels/${channel}`]) {
      const res = await fetch(new URL(route, base), {
        method: 'OPTIONS',
        headers: { ...origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' },
      });
      await res.body?.cancel();
      assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN, route);
      assert.equal(res.headers.get('access-control-allow-credentials'), null, route);
    }
  });
});

describe('no 5xx', () => {
  test('a seeded corpus of malformed requests against every endpoint: every answer is < 500, errors are problems', async () => {
    const SEED = 0x5eed1e55;
    const REQUESTS = 400;
    let state = SEED;
    // mulberry32: small, and the same sequence on every run.
    const random = () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = (list) => list[Math.floor(random() * list.length)];
    const chance = (p) => random() < p;
    const int = (n) => Math.floor(random() * n);
    const printable = (n) => Array.from({ length: n }, () => String.fromCharCode(0x20 + int(95))).join('');

    const tenant = newTenant();
    const other = newTenant();
    const channels = [channelOf(tenant, 'c1'), channelOf(tenant, 'c2'), channelOf(other, 'c3')];
    const { key } = await provisionKey({ name: 'corpus', tenant, scope: 'events:publish' });
    const credentials = [
      undefined,
      `Bearer ${await subscriber(tenant)}`,
      `Bearer ${await publisher(tenant)}`,
      `Bearer ${await platformPublisher()}`,
      `Bearer ${admin}`,
      `Bearer ${await token({ scope: 'events:publish' })}`,
      `Bearer ${await subscriber(tenant, { exp: 1 })}`,
      `Api-Key ${key}`,
      'Api-Key es_unknown',
      'Bearer',
      'Bearer a.b.c',
      `Bearer ${'a'.repeat(9000)}`,
      'Basic dXNlcjpwYXNz',
      'Bearer \u00ff\u00fe',
    ];
    const junkStrings = [
      '',
      ' ',
      '%zz',
      '%00',
      '%ff%fe',
      '\u0000',
      '\ud800',
      '\u{1F680}',
      'caf\u00e9',
      '../../etc/passwd',
      '18446744073709551616',
      '-1',
      '1e400',
      'scan-progress:BAD:x',
      `scan-progress:${tenant}`,
      `scan-progress:${tenant}:x:y`,
      `${channels[0]},${channels[1]}`,
      'x'.repeat(5000),
    ];
    const string = () => (chance(0.3) ? pick(channels) : chance(0.5) ? pick(junkStrings) : printable(int(40)));
    const value = (depth = 0) => {
      switch (int(depth > 3 ? 5 : 8)) {
        case 0: return null;
        case 1: return pick([0, -0, 1, -1, 1.5, 2 ** 53, 2 ** 64, 1e308, -1e308]);
        case 2: return pick([true, false]);
        case 3: return string();
        case 4: return pick(channels);
        case 5: return Array.from({ length: int(4) }, () => value(depth + 1));
        case 6: return Object.fromEntries(Array.from({ length: int(4) }, () => [string().slice(0, 20), value(depth + 1)]));
        default: return { channel: pick(channels), event: pick(['job.step', 'stream-open', '', 'a b', 'x'.repeat(65)]), data: value(depth + 1) };
      }
    };
    const mutate = (object) => {
      const copy = { ...object };
      for (const k of Object.keys(copy)) if (chance(0.3)) copy[k] = value(1);
      if (chance(0.2)) delete copy[pick(Object.keys(copy))];
      if (chance(0.2)) copy[string().slice(0, 16)] = value(1);
      return copy;
    };
    const event = () => mutate({ channel: pick(channels), event: 'job.step', data: value(1), idempotency_key: chance(0.5) ? string() : 'k' });
    const bodies = [
      () => '',
      () => Buffer.from(Array.from({ length: int(2000) }, () => int(256))),
      () => JSON.stringify(event()),
      () => JSON.stringify({ events: Array.from({ length: pick([0, 1, 3, 100, 101]) }, event) }),
      () => JSON.stringify(mutate({ channels: Array.from({ length: int(7) }, () => pick(channels)) })),
      () => JSON.stringify(mutate({ tenant: pick([tenant, other, 'nope']), user: 'u', ttl_seconds: pick([1, 0, -1, 1e20, 2 ** 64, '60']) })),
      () => JSON.stringify(mutate({ tenant, publish: pick([true, false, 'yes', null]) })),
      () => '['.repeat(int(20_000)),
      () => `{"channel":"${pick(channels)}","channel":"${pick(channels)}","event":"job.step","data":1}`,
      () => `\ufeff${JSON.stringify(event())}`,
      () => JSON.stringify(event()).slice(0, int(60)),
      () => `{"channel":"${pick(channels)}","event":"job.step","data":"\\ud800\\udc00\\ud800","idempotency_key":"\\u0022\\u005c"}`,
      () => JSON.stringify(value()),
      () => JSON.stringify({ channel: pick(channels.slice(0, 2)), event: 'job.step', data: value(1) }),
    ];
    const endpoints = [
      ['GET', '/v1/stream'],
      ['POST', '/v1/publish', bodies[2]],
      ['POST', '/v1/publish', bodies[3]],
      ['POST', '/v1/publish', bodies[13]],
      ['POST', '/v1/tickets', bodies[4]],
      ['POST', '/v1/admin/kick', bodies[5]],
      ['GET', '/v1/channels/'],
      ['GET', '/healthz'],
      ['POST', '/dev/token', bodies[6]],
      ['OPTIONS', '/v1/publish'],
      ['GET', '/demo'],
      ['GET', '/'],
    ];
    const suffixes = ['/', '//', '/..', '/%2e%2e', '%00', '/x', ';x', '%zz', '/%ff', '/caf%C3%A9', '.json', '?'];
    const queryKeys = ['channel', 'channels', 'lastEventId', 'access_token', 'ticket', 'api_key', 'x', 'channel[]'];
    const queryValue = () =>
      pick([
        () => encodeURIComponent(string().toWellFormed()),
        () => pick(['%zz', '%', '%0', '%ff', '+', '&&', '==']),
        () => encodeURIComponent(`${quote(pick(channels))}:${pick(['0', '1', '18446744073709551615', '18446744073709551616', '+1', '%zz'])}`),
        () => encodeURIComponent(pick(credentials)?.split(' ')[1] ?? ''),
        () => pick(['f'.repeat(64), '0'.repeat(64), 'g'.repeat(64)]),
      ])();
    const headerValue = (s) => s.replace(/[^\x20-\x7e]/g, '?');

    function request(i) {
      // Mostly a route with its own method and a body of its kind, so that
      // requests get past routing and authentication into the parsers.
      const [routeMethod, route, body] = pick(endpoints);
      const method = chance(0.8) ? routeMethod : pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
      let path = route === '/v1/channels/' ? route + (chance(0.5) ? encodeURIComponent(string().toWellFormed()) : pick(channels)) : route;
      if (chance(0.25)) path += pick(suffixes);
      const query = Array.from({ length: int(5) }, () => `${pick(queryKeys)}=${queryValue()}`).join('&');
      if (query) path += (path.includes('?') ? '&' : '?') + query;
      const headers = {};
      const credential = chance(0.6) ? pick(credentials.slice(1, 8)) : pick(credentials);
      if (credential) headers.Authorization = headerValue(credential);
      if (chance(0.7)) headers['Content-Type'] = pick(['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON']);
      else if (chance(0.7)) headers['Content-Type'] = pick(['text/plain', 'application/problem+json', 'multipart/form-data', 'application/jsonx', '']);
      if (chance(0.3)) headers['Last-Event-ID'] = headerValue(pick([string(), `${quote(pick(channels))}:1`, '%zz:1']));
      if (chance(0.3)) headers.Origin = pick([ALLOWED_ORIGIN, 'https://evil.example', 'null']);
      const payload = ['GET', 'HEAD', 'OPTIONS'].includes(method) ? undefined : chance(0.6) && body ? body() : pick(bodies)();
      return { i, method, path, headers, body: payload };
    }

    /** Sends one request as it is written (no URL normalisation); reads a stream only up to its headers. */
    const send = ({ method, path, headers, body }) =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: new URL(base).hostname, port: new URL(base).port, method, path, headers, agent: false }, (res) => {
          const isStream = (res.headers['content-type'] ?? '').startsWith('text/event-stream');
          if (isStream) {
            req.destroy();
            resolve({ status: res.statusCode, headers: res.headers, text: '' });
            return;
          }
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
          res.on('error', reject);
        });
        req.setTimeout(20_000, () => req.destroy(new Error('no answer within 20 s')));
        req.on('error', reject);
        req.end(body);
      });

    const failures = [];
    const statuses = {};
    for (let i = 0; i < REQUESTS; i++) {
      const r = request(i);
      let res;
      try {
        res = await send(r);
      } catch (e) {
        failures.push(`#${i} ${r.method} ${r.path.slice(0, 200)}: ${e.message}`);
        continue;
      }
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      const where = `#${i} ${r.method} ${r.path.slice(0, 200)} -> ${res.status} ${res.text.slice(0, 200)}`;
      if (res.status >= 500) failures.push(where);
      if (res.headers['access-control-allow-credentials'] !== undefined) failures.push(`${where}: allows credentials`);
      if (res.status >= 400 && r.method !== 'HEAD') {
        if (res.headers['content-type'] !== PROBLEM_TYPE) failures.push(`${where}: content-type ${res.headers['content-type']}`);
        else {
          try {
            const problem = JSON.parse(res.text);
            if (problem.status !== res.status || typeof problem.code !== 'string') failures.push(`${where}: not a problem`);
          } catch {
            failures.push(`${where}: problem body is not JSON`);
          }
        }
      }
    }
    assert.deepEqual(failures, [], `seed ${SEED}; statuses ${JSON.stringify(statuses)}`);
    // The corpus reached past the gates, not only into 401s and 404s.
    for (const status of [200, 202, 400, 401, 403, 404, 405, 415]) assert.ok(statuses[status] > 0, `no ${status} in ${JSON.stringify(statuses)}`);
    // And the worker is still well.
    assert.equal((await fetch(new URL('/healthz', base))).status, 200);
  });
});
