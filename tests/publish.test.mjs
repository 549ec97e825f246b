// POST /v1/publish: single events and batches, ids per channel, who may
// publish where, body validation and limits, and that data arrives at
// subscribers exactly as its compact JSON text.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, publisher, platformPublisher, token, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish } from './support/sse.mjs';
import { assertProblem, quote, cursorOf } from './support/http.mjs';

const MAX_EVENT_BYTES = 1024;
let worker;
let base;
const logs = logCollector();

before(async () => {
  worker = await startWorker({
    vars: { MAX_EVENT_BYTES: String(MAX_EVENT_BYTES) },
    handleStructuredLogs: logs.handleStructuredLogs,
  });
  base = worker.url;
});
after(async () => {
  await worker?.stop();
});

/** POST /v1/publish with full control over headers and body; returns the Response. */
function post(body, headers = {}, path = '/v1/publish') {
  return fetch(new URL(path, base), {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const ev = (channel, data = { pct: 1 }, event = 'scan.progress', extra = {}) => ({ channel, event, data, ...extra });

/** The next id a channel will assign, found by publishing a probe event. */
async function nextId(tenant, channel) {
  const r = await publish(base, await publisher(tenant), ev(channel, 'probe', 'probe.sent'));
  assert.equal(r.status, 202, r.text);
  return r.body.results[0].id;
}

describe('publishing', () => {
  it('a single event: 202 with its channel and id, ids per channel from 1', async () => {
    const t = newTenant();
    const [a, b] = [channelOf(t), channelOf(t)];
    const token = await publisher(t);
    const r1 = await publish(base, token, ev(a));
    assert.equal(r1.status, 202, r1.text);
    assert.match(r1.headers.get('content-type'), /^application\/json/);
    assert.deepEqual(r1.body, { results: [{ channel: a, id: 1, duplicate: false }] });
    const r2 = await publish(base, token, ev(a, { pct: 2 }));
    assert.deepEqual(r2.body, { results: [{ channel: a, id: 2, duplicate: false }] });
    const r3 = await publish(base, token, ev(b));
    assert.deepEqual(r3.body, { results: [{ channel: b, id: 1, duplicate: false }] });
  });

  it('a batch: 202 with one result per event, in request order, with per-channel ids', async () => {
    const t = newTenant();
    const [a, b, c] = [channelOf(t, 'a'), channelOf(t, 'b'), channelOf(t, 'c')];
    const sub = subscribe(base, [a, b, c], { token: await subscriber(t), types: ['scan.progress'] });
    try {
      await sub.opened();
      const batch = [ev(a, 1), ev(b, 2), ev(a, 3), ev(c, 4), ev(a, 5), ev(b, 6)];
      const r = await publish(base, await publisher(t), { events: batch });
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.body, {
        results: [
          { channel: a, id: 1, duplicate: false },
          { channel: b, id: 1, duplicate: false },
          { channel: a, id: 2, duplicate: false },
          { channel: c, id: 1, duplicate: false },
          { channel: a, id: 3, duplicate: false },
          { channel: b, id: 2, duplicate: false },
        ],
      });
      await sub.waitForData(6, 10_000);
      // Within each channel, delivery is in publish order.
      const perChannel = (prefix) =>
        sub
          .data()
          .map((e) => Number(e.data))
          .filter((n) => batch[n - 1].channel === prefix);
      assert.deepEqual(perChannel(a), [1, 3, 5]);
      assert.deepEqual(perChannel(b), [2, 6]);
      assert.deepEqual(perChannel(c), [4]);
      assert.equal(sub.data().at(-1).id.split(',').length, 3);
      const last = Object.fromEntries(sub.data().at(-1).id.split(',').map((p) => p.split(':')));
      assert.deepEqual(last, { [quote(a)]: '3', [quote(b)]: '2', [quote(c)]: '1' });
    } finally {
      sub.close();
    }
  });

  it('a batch of exactly 100 events is accepted; 101 is refused with 400 and nothing is stored', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const token = await publisher(t);
    const tooMany = await post(
      { events: Array.from({ length: 101 }, (_, i) => ev(a, i)) },
      { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    );
    await assertProblem(tooMany, 400, 'batch_too_large');
    const r = await publish(base, token, { events: Array.from({ length: 100 }, (_, i) => ev(a, i)) });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(
      r.body.results.map((x) => x.id),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
  });

  it('an empty batch is 400 invalid_body', async () => {
    const t = newTenant();
    const r = await post({ events: [] }, { 'Content-Type': 'application/json', Authorization: `Bearer ${await publisher(t)}` });
    await assertProblem(r, 400, 'invalid_body');
  });

  it('a repeated idempotency_key returns the original id with duplicate: true and is not delivered again', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const sub = subscribe(base, [a], { token: await subscriber(t), types: ['scan.progress', 'scan.completed'] });
    try {
      await sub.opened();
      const token = await publisher(t);
      const first = await publish(base, token, ev(a, { n: 1 }, 'scan.progress', { idempotency_key: 'k-1' }));
      assert.deepEqual(first.body, { results: [{ channel: a, id: 1, duplicate: false }] });
      const again = await publish(base, token, ev(a, { n: 1 }, 'scan.progress', { idempotency_key: 'k-1' }));
      assert.equal(again.status, 202, again.text);
      assert.deepEqual(again.body, { results: [{ channel: a, id: 1, duplicate: true }] });
      const next = await publish(base, token, ev(a, { n: 2 }, 'scan.completed'));
      assert.deepEqual(next.body, { results: [{ channel: a, id: 2, duplicate: false }] });
      await sub.until(() => sub.data().some((e) => e.type === 'scan.completed'), 10_000, 'scan.completed');
      assert.deepEqual(
        sub.data().map((e) => [e.id, e.type, e.data]),
        [
          [`${quote(a)}:1`, 'scan.progress', '{"n":1}'],
          [`${quote(a)}:2`, 'scan.completed', '{"n":2}'],
        ],
      );
    } finally {
      sub.close();
    }
  });
});

describe('who may publish', () => {
  it('no credentials: 401 missing_credentials', async () => {
    const r = await post(ev(channelOf(newTenant())), { 'Content-Type': 'application/json' });
    await assertProblem(r, 401, 'missing_credentials');
  });

  it('an invalid token: 401 invalid_token', async () => {
    const t = newTenant();
    const expired = await publisher(t, { exp: Math.floor(Date.now() / 1000) - 3600 });
    for (const bad of ['not-a-jwt', expired]) {
      const r = await post(ev(channelOf(t)), { 'Content-Type': 'application/json', Authorization: `Bearer ${bad}` });
      await assertProblem(r, 401, 'invalid_token', { error: 'invalid_token' });
    }
  });

  it('a refused publish leaves the kept-alive connection usable for the next publish', async () => {
    // One connection, so each request goes out on the connection the
    // previous answer came back on.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const send = (body, tok) =>
      new Promise((resolve, reject) => {
        const req = http.request(
          new URL('/v1/publish', base),
          { method: 'POST', agent, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tok}` } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    try {
      const t = newTenant();
      const a = channelOf(t);
      const good = await publisher(t);
      // Refused before its body is read: the body is what must not poison the connection.
      const refused = JSON.stringify({ channel: a, event: 'scan.progress', data: 'x'.repeat(60_000) });
      for (let i = 0; i < 30; i++) {
        assert.equal(await send(refused, 'not-a-jwt'), 401);
        assert.equal(await send(JSON.stringify(ev(a)), good), 202);
      }
    } finally {
      agent.destroy();
    }
  });

  it('a publish token in the query string is not accepted', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const tok = await publisher(t);
    const r = await post(ev(a), { 'Content-Type': 'application/json' }, `/v1/publish?access_token=${encodeURIComponent(tok)}`);
    // Refused with a reason that says where the token belongs.
    const problem = await assertProblem(r, 401, 'invalid_token', { error: 'invalid_token' });
    assert.match(problem.detail, /Authorization header/);
    // Nothing was published.
    assert.equal(await nextId(t, a), 1);
  });

  it('a token without the events:publish scope: 403 insufficient_scope', async () => {
    const t = newTenant();
    const a = channelOf(t);
    for (const tok of [
      await subscriber(t),
      await token({ tenant_id: t, scope: 'events:read' }),
      await token({ tenant_id: t, scope: 'events:publisher' }),
      await token({ tenant_id: t, scope: 'events:publish:x' }),
      await token({ scope: 'events:subscribe' }),
    ]) {
      const r = await post(ev(a), { 'Content-Type': 'application/json', Authorization: `Bearer ${tok}` });
      await assertProblem(r, 403, 'insufficient_scope');
    }
    assert.equal(await nextId(t, a), 1);
  });

  it('events:publish among other scopes is enough', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const r = await publish(base, await token({ tenant_id: t, scope: 'events:read events:publish admin' }), ev(a));
    assert.equal(r.status, 202, r.text);
  });

  it("a tenant publisher cannot publish to another tenant's channel: 403, and no part of a batch is stored", async () => {
    const [mine, theirs] = [newTenant(), newTenant()];
    const [own, foreign] = [channelOf(mine), channelOf(theirs)];
    const tok = await publisher(mine);
    const single = await post(ev(foreign), { 'Content-Type': 'application/json', Authorization: `Bearer ${tok}` });
    await assertProblem(single, 403, 'channel_forbidden');
    const batch = await post({ events: [ev(own), ev(foreign)] }, { 'Content-Type': 'application/json', Authorization: `Bearer ${tok}` });
    await assertProblem(batch, 403, 'channel_forbidden');
    assert.equal(await nextId(mine, own), 1);
    assert.equal(await nextId(theirs, foreign), 1);
  });

  it('a platform publisher (no tenant) can publish to any tenant, and subscribers receive it', async () => {
    const [ta, tb] = [newTenant(), newTenant()];
    const [a, b] = [channelOf(ta), channelOf(tb)];
    const sub = subscribe(base, [a], { token: await subscriber(ta), types: ['scan.progress'] });
    try {
      await sub.opened();
      const r = await publish(base, await platformPublisher(), { events: [ev(a, { to: 'a' }), ev(b, { to: 'b' })] });
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.body.results, [
        { channel: a, id: 1, duplicate: false },
        { channel: b, id: 1, duplicate: false },
      ]);
      await sub.waitForData(1, 10_000);
      assert.deepEqual(sub.data(), [{ type: 'scan.progress', id: cursorOf([[a, 1]]), data: '{"to":"a"}' }]);
    } finally {
      sub.close();
    }
  });
});

describe('body validation', () => {
  let auth;
  before(async () => {
    auth = `Bearer ${await platformPublisher()}`;
  });

  it('a Content-Type other than application/json: 415 unsupported_media_type', async () => {
    const body = JSON.stringify(ev(channelOf(newTenant())));
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await post(body, { 'Content-Type': contentType, Authorization: auth });
      await assertProblem(r, 415, 'unsupported_media_type');
    }
    // A body without any Content-Type (fetch would label a string text/plain).
    const r = await fetch(new URL('/v1/publish', base), {
      method: 'POST',
      headers: { Authorization: auth },
      body: new TextEncoder().encode(body),
    });
    await assertProblem(r, 415, 'unsupported_media_type');
  });

  it('application/json with a charset parameter is accepted', async () => {
    const r = await post(ev(channelOf(newTenant())), { 'Content-Type': 'application/json; charset=utf-8', Authorization: auth });
    assert.equal(r.status, 202, await r.text());
  });

  it('a body that is not JSON: 400 invalid_body', async () => {
    for (const body of ['{', 'not json', '', '{"channel": "a", }']) {
      const r = await post(body, { 'Content-Type': 'application/json', Authorization: auth });
      await assertProblem(r, 400, 'invalid_body');
    }
  });

  it('JSON that is not a publish request: 400 invalid_body', async () => {
    const c = channelOf(newTenant());
    for (const body of [
      [],
      [ev(c)],
      'just a string',
      42,
      {},
      { channel: c, event: 'scan.progress' }, // no data
      { channel: c, data: 1 }, // no event
      { event: 'scan.progress', data: 1 }, // no channel
      { ...ev(c), events: [ev(c)] }, // both forms
      { events: [{ channel: c, event: 'scan.progress' }] },
      { events: ev(c) },
      { ...ev(c), idempotency_kye: 'typo' }, // unknown field
      { ...ev(c), event: '' },
      { ...ev(c), event: 'scan progress' },
      { ...ev(c), event: 'scan.progress\nid: 99' },
      { ...ev(c), event: 7 },
      { ...ev(c), idempotency_key: '' },
    ]) {
      const r = await post(body, { 'Content-Type': 'application/json', Authorization: auth });
      const text = await r.text();
      assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${text}`);
      await assertProblem(r, 400, 'invalid_body', { text });
    }
  });

  it('an invalid channel: 400 invalid_channel', async () => {
    const t = newTenant();
    for (const channel of [`scan-progress:${t}`, `scan-progress:${t.toUpperCase()}:r`, `scan-progress:${t}:r:x`, '']) {
      const r = await post(ev(channel), { 'Content-Type': 'application/json', Authorization: auth });
      await assertProblem(r, 400, 'invalid_channel');
    }
    const r = await post({ events: [ev(channelOf(t)), ev('nope')] }, { 'Content-Type': 'application/json', Authorization: auth });
    await assertProblem(r, 400, 'invalid_channel');
  });

  for (const reserved of ['stream-open', 'stream-reset', 'stream-error']) {
    it(`the relay's own event type ${reserved} is refused`, async () => {
      const t = newTenant();
      const a = channelOf(t);
      const r = await post(ev(a, { channels: [] }, reserved), { 'Content-Type': 'application/json', Authorization: auth });
      await assertProblem(r, 400, 'invalid_body');
      const batch = await post({ events: [ev(a), ev(a, {}, reserved)] }, { 'Content-Type': 'application/json', Authorization: auth });
      await assertProblem(batch, 400, 'invalid_body');
      assert.equal(await nextId(t, a), 1);
    });
  }

  it('an event over MAX_EVENT_BYTES: 413 event_too_large, also inside a batch', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const small = 'x'.repeat(MAX_EVENT_BYTES / 2);
    const big = 'x'.repeat(MAX_EVENT_BYTES + 1);
    const ok = await post(ev(a, small), { 'Content-Type': 'application/json', Authorization: auth });
    assert.equal(ok.status, 202, await ok.text());
    const tooBig = await post(ev(a, big), { 'Content-Type': 'application/json', Authorization: auth });
    await assertProblem(tooBig, 413, 'event_too_large');
    const batch = await post({ events: [ev(a, 'fine'), ev(a, { big })] }, { 'Content-Type': 'application/json', Authorization: auth });
    await assertProblem(batch, 413, 'event_too_large');
    // Only the first, small event was stored.
    assert.equal(await nextId(t, a), 2);
  });
});

describe('data round trip', () => {
  const values = {
    object: { pct: 42, nested: { list: [1, 'two', null, true], empty: {} } },
    array: [1, 'two', { three: 3 }, [], null],
    string: 'hello',
    'empty string': '',
    integer: 42,
    'negative float': -1.5,
    zero: 0,
    'large number': 12345678901234,
    true: true,
    false: false,
    null: null,
    'unicode and escapes': { s: 'caf\u00e9 \u{1F680} "quoted" back\\slash \t tab \u0001' },
    'empty object': {},
    'empty array': [],
  };

  it('data of every JSON type arrives as its compact JSON text', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const sub = subscribe(base, [a], { token: await subscriber(t), types: ['value.sent'] });
    try {
      await sub.opened();
      const entries = Object.entries(values);
      // Pretty-printed on the way in; compact on the way out.
      const body = JSON.stringify({ events: entries.map(([, data]) => ({ channel: a, event: 'value.sent', data })) }, null, 2);
      const r = await publish(base, await publisher(t), body);
      assert.equal(r.status, 202, r.text);
      await sub.waitForData(entries.length, 10_000);
      const got = sub.data();
      for (const [i, [name, value]] of entries.entries()) {
        assert.equal(got[i].data, JSON.stringify(value), name);
        assert.deepEqual(JSON.parse(got[i].data), value, name);
        assert.equal(got[i].id, `${quote(a)}:${i + 1}`);
      }
    } finally {
      sub.close();
    }
  });

  it('whitespace in hand-written JSON is removed, strings are left exactly as written', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const sub = subscribe(base, [a], { token: await subscriber(t), types: ['value.sent'] });
    try {
      await sub.opened();
      const body = `{ "channel" : "${a}" ,\n "event" : "value.sent",\r\n\t"data" : { "a" : [ 1 , 2 ] , "s" : " spaced  out " } }`;
      const r = await publish(base, await publisher(t), body);
      assert.equal(r.status, 202, r.text);
      await sub.waitForData(1, 10_000);
      assert.equal(sub.data()[0].data, '{"a":[1,2],"s":" spaced  out "}');
    } finally {
      sub.close();
    }
  });

  it('multi-line string data arrives intact through EventSource, without forging frames', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const sub = subscribe(base, [a], { token: await subscriber(t), types: ['log.line', 'forged'] });
    try {
      await sub.opened();
      const texts = [
        'line one\nline two\r\nline three\rline four',
        '\n\nid: forged:1\nevent: forged\ndata: {}\n\n',
        'trailing newline\n',
      ];
      const r = await publish(base, await publisher(t), { events: texts.map((data) => ({ channel: a, event: 'log.line', data })) });
      assert.equal(r.status, 202, r.text);
      await sub.waitForData(3, 10_000);
      assert.deepEqual(
        sub.data().map((e) => [e.type, JSON.parse(e.data)]),
        texts.map((s) => ['log.line', s]),
      );
      assert.deepEqual(
        sub.data().map((e) => e.id),
        [1, 2, 3].map((n) => `${quote(a)}:${n}`),
      );
    } finally {
      sub.close();
    }
  });
});
