// Credentials beyond a bearer token, each attacked: API keys (header only,
// fingerprinted in KV), single-use stream tickets, and kicks that end live
// streams and keep revoked users and tokens out.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startWorker, useWorker, ROOT } from './support/worker.mjs';
import { subscriber, publisher, token, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish, readRaw, streamUrl } from './support/sse.mjs';
import { channelStats } from './support/http.mjs';

const post = (base, route, credential, body) =>
  fetch(new URL(route, base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(credential ? { Authorization: credential } : {}) },
    body: JSON.stringify(body),
  });

async function problemOf(res) {
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  return (await res.json()).code;
}

describe('API keys', () => {
  let worker;
  let tenant;
  let key;
  before(async () => {
    worker = await startWorker({ kvNamespaces: ['API_KEYS'] });
    tenant = newTenant();
    // Provisioned as an operator would: the script prints the key and the
    // record to store under its fingerprint.
    const out = execFileSync('node', [path.join(ROOT, 'scripts/api-key.mjs'), '--name', 'billing', '--tenant', tenant, '--scope', 'events:publish'], { encoding: 'utf8' });
    key = out.match(/API key \(shown once\): (\S+)/)[1];
    const [, fingerprint, record] = out.match(/kv key put --binding API_KEYS (\w+) '(.*)'/);
    assert.equal(fingerprint, createHash('sha256').update(key).digest('hex'));
    const kv = await worker.mf.getKVNamespace('API_KEYS');
    await kv.put(fingerprint, record);
    const expired = { name: 'old', tenant, scope: 'events:publish', expires_at: 1 };
    await kv.put(createHash('sha256').update('es_expired').digest('hex'), JSON.stringify(expired));
  });
  after(() => worker.stop());

  test('a provisioned key publishes for its tenant', async () => {
    const channel = channelOf(tenant);
    const res = await post(worker.url, '/v1/publish', `Api-Key ${key}`, { channel, event: 'x.y', data: 1 });
    assert.equal(res.status, 202);
    assert.equal((await res.json()).results[0].id, 1);
  });

  test('a key cannot publish to another tenant', async () => {
    const res = await post(worker.url, '/v1/publish', `Api-Key ${key}`, { channel: channelOf(newTenant()), event: 'x.y', data: 1 });
    assert.equal(res.status, 403);
    assert.equal(await problemOf(res), 'channel_forbidden');
  });

  test('unknown, expired and malformed keys are refused', async () => {
    for (const bad of ['es_unknown', 'es_expired', `${key}x`]) {
      const res = await post(worker.url, '/v1/publish', `Api-Key ${bad}`, { channel: channelOf(tenant), event: 'x.y', data: 1 });
      assert.equal(res.status, 401, bad);
      assert.equal(await problemOf(res), 'invalid_token');
    }
  });

  test('a key is never taken from the query string', async () => {
    for (const param of ['access_token', 'ticket', 'api_key']) {
      const url = streamUrl(worker.url, [channelOf(tenant)], { [param]: key });
      const res = await fetch(url);
      assert.equal(res.status, 401, param);
      await res.body?.cancel();
    }
  });

  test('a key opens a stream of its tenant from the header, and only of its tenant', async () => {
    // A key without scopes is a subscriber's, like a token without one.
    const reader = 'es_reader_key_0123456789abcdef';
    const kv = await worker.mf.getKVNamespace('API_KEYS');
    await kv.put(createHash('sha256').update(reader).digest('hex'), JSON.stringify({ name: 'dashboard', tenant, scope: '' }));
    const channel = channelOf(tenant);
    for (const credential of [reader, key]) {
      const { res, text } = await readRaw(streamUrl(worker.url, [channel]), {
        headers: { Authorization: `Api-Key ${credential}` },
        done: (t) => t.includes('event: stream-open'),
      });
      assert.equal(res.status, 200, text);
      const foreign = await fetch(streamUrl(worker.url, [channelOf(newTenant())]), { headers: { Authorization: `Api-Key ${credential}` } });
      assert.equal(foreign.status, 403);
      assert.equal(await problemOf(foreign), 'channel_forbidden');
    }
    // And it delivers: an event published while the stream is open arrives.
    const live = channelOf(tenant);
    const streaming = readRaw(streamUrl(worker.url, [live]), {
      headers: { Authorization: `Api-Key ${reader}` },
      done: (t) => t.includes('"via":"key"}\n\n'),
      timeoutMs: 15_000,
    });
    for (const deadline = Date.now() + 10_000; (await channelStats(worker.url, live)).streams !== 1;) {
      assert.ok(Date.now() < deadline, 'the stream never attached');
      await new Promise((r) => setTimeout(r, 50));
    }
    const res = await post(worker.url, '/v1/publish', `Api-Key ${key}`, { channel: live, event: 'x.y', data: { via: 'key' } });
    assert.equal(res.status, 202);
    assert.match((await streaming).text, /event: x\.y\ndata: \{"via":"key"\}/);
    // A key without the publish scope cannot publish.
    const refused = await post(worker.url, '/v1/publish', `Api-Key ${reader}`, { channel, event: 'x.y', data: 1 });
    assert.equal(refused.status, 403);
    assert.equal(await problemOf(refused), 'insufficient_scope');
  });

  test('a key is issued stream tickets for its tenant', async () => {
    const channel = channelOf(tenant);
    const issued = await post(worker.url, '/v1/tickets', `Api-Key ${key}`, { channels: [channel] });
    assert.equal(issued.status, 201);
    const { ticket } = await issued.json();
    const { res, text } = await readRaw(streamUrl(worker.url, [], { ticket }), { done: (t) => /event: stream-open\ndata: [^\n]*\n\n/.test(t) });
    assert.equal(res.status, 200, text);
    assert.match(text, new RegExp(`"channels":\\["${channel}"\\]`));
    const spent = await fetch(streamUrl(worker.url, [], { ticket }));
    assert.equal(spent.status, 401);
    await spent.body?.cancel();
    const foreign = await post(worker.url, '/v1/tickets', `Api-Key ${key}`, { channels: [channelOf(newTenant())] });
    assert.equal(foreign.status, 403);
    assert.equal(await problemOf(foreign), 'channel_forbidden');
  });

  test('the key is not a bearer token either', async () => {
    const res = await post(worker.url, '/v1/publish', `Bearer ${key}`, { channel: channelOf(tenant), event: 'x.y', data: 1 });
    assert.equal(res.status, 401);
  });
});

describe('stream tickets', () => {
  const worker = useWorker();

  const issue = async (tenant, channels, credential) =>
    post(worker.url, '/v1/tickets', credential ?? `Bearer ${await subscriber(tenant)}`, { channels });

  test('a ticket opens its stream once, and only once', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const res = await issue(tenant, [channel]);
    assert.equal(res.status, 201);
    const { ticket, expires_in, channels } = await res.json();
    assert.match(ticket, /^[0-9a-f]{64}$/);
    assert.ok(expires_in > 0 && expires_in <= 60);
    assert.deepEqual(channels, [channel]);

    const s = subscribe(worker.url, [], { query: { ticket }, types: ['x.y'] });
    try {
      await s.opened();
      assert.deepEqual(JSON.parse(s.events[0].data).channels, [channel]);
      await publish(worker.url, await publisher(tenant), { channel, event: 'x.y', data: 7 });
      await s.waitForData(1);
    } finally {
      s.close();
    }
    const replay = await fetch(streamUrl(worker.url, [], { ticket }));
    assert.equal(replay.status, 401);
    assert.equal(await problemOf(replay), 'invalid_token');
  });

  test('concurrent redemptions of one ticket: exactly one stream opens', async () => {
    const tenant = newTenant();
    const { ticket } = await (await issue(tenant, [channelOf(tenant)])).json();
    const controllers = [];
    const results = await Promise.all(
      Array.from({ length: 8 }, () => {
        const c = new AbortController();
        controllers.push(c);
        return fetch(streamUrl(worker.url, [], { ticket }), { signal: c.signal }).then((r) => r.status);
      }),
    );
    controllers.forEach((c) => c.abort());
    assert.deepEqual(results.sort(), [200, 401, 401, 401, 401, 401, 401, 401]);
  });

  test('a ticket cannot widen its channels, and a refused request does not use it up', async () => {
    const tenant = newTenant();
    const granted = channelOf(tenant, 'granted');
    const { ticket } = await (await issue(tenant, [granted])).json();
    const other = await fetch(streamUrl(worker.url, [channelOf(tenant, 'other')], { ticket }));
    assert.equal(other.status, 403);
    assert.equal(await problemOf(other), 'channel_forbidden');
    // Nor can anyone holding the ticket turn it on another tenant's channel.
    const { ticket: second } = await (await issue(tenant, [granted])).json();
    const foreign = await fetch(streamUrl(worker.url, [channelOf(newTenant())], { ticket: second }));
    assert.equal(foreign.status, 403);
    // The forbidden request used the ticket: redeeming happens before the
    // channel check, so probing for channels costs the prober the ticket.
    const again = await fetch(streamUrl(worker.url, [granted], { ticket }));
    assert.equal(again.status, 401);
    // A malformed request is refused before the ticket is redeemed: a fresh
    // ticket survives one, opens its stream, and is spent by that.
    const { ticket: fresh } = await (await issue(tenant, [granted])).json();
    const malformed = await fetch(streamUrl(worker.url, ['not-a-channel'], { ticket: fresh }));
    assert.equal(malformed.status, 400);
    assert.equal(await problemOf(malformed), 'invalid_channel');
    const opened = await fetch(streamUrl(worker.url, [granted], { ticket: fresh }));
    assert.equal(opened.status, 200);
    await opened.body.cancel();
    const spent = await fetch(streamUrl(worker.url, [granted], { ticket: fresh }));
    assert.equal(spent.status, 401);
    assert.equal(await problemOf(spent), 'invalid_token');
  });

  test("a ticket for another tenant's channel is never issued", async () => {
    const tenant = newTenant();
    const res = await issue(tenant, [channelOf(newTenant())]);
    assert.equal(res.status, 403);
    assert.equal(await problemOf(res), 'channel_forbidden');
  });

  test('tickets are issued to header credentials only, and tickets need a tenant', async () => {
    const tenant = newTenant();
    const viaQuery = await fetch(new URL(`/v1/tickets?access_token=${await subscriber(tenant)}`, worker.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channels: [channelOf(tenant)] }),
    });
    assert.equal(viaQuery.status, 401);
    const platform = await issue(tenant, [channelOf(tenant)], `Bearer ${await token({ scope: 'events:publish' })}`);
    assert.equal(platform.status, 403);
    assert.equal(await problemOf(platform), 'tenant_missing');
  });

  test('malformed, unknown and doubled tickets are refused', async () => {
    const tenant = newTenant();
    const { ticket } = await (await issue(tenant, [channelOf(tenant)])).json();
    for (const query of [{ ticket: 'abc' }, { ticket: 'f'.repeat(64) }, { ticket: '../../x' }]) {
      const res = await fetch(streamUrl(worker.url, [], query));
      assert.equal(res.status, 401, JSON.stringify(query));
    }
    const both = await fetch(streamUrl(worker.url, [], { ticket, access_token: await subscriber(tenant) }));
    assert.equal(both.status, 401);
  });

  test('a stream opened with a ticket closes when the issuing token expires', async () => {
    const tenant = newTenant();
    const short = await token({ tenant_id: tenant }, { expiresIn: '2s' });
    const { ticket } = await (await issue(tenant, [channelOf(tenant)], `Bearer ${short}`)).json();
    const { text } = await readRaw(streamUrl(worker.url, [], { ticket }), {
      done: (t) => t.includes('stream-error'),
      timeoutMs: 10_000,
    });
    assert.match(text, /"code":"token_expired"/);
  });
});

describe('kicks and revocation', () => {
  let worker;
  let admin;
  before(async () => {
    worker = await startWorker({ vars: { RETRY_MS: '100' } });
    admin = await token({ scope: 'events:admin events:platform' });
  });
  after(() => worker.stop());

  const kick = (body, credential = `Bearer ${admin}`) => post(worker.url, '/v1/admin/kick', credential ?? undefined, body);

  test('kicking a user ends their live streams and refuses them until the revocation ends', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const alice = await subscriber(tenant, { sub: 'alice' });
    const bob = await subscriber(tenant, { sub: 'bob' });
    const a = subscribe(worker.url, [channel], { token: alice });
    const b = subscribe(worker.url, [channel], { token: bob, types: ['x.y'] });
    try {
      await Promise.all([a.opened(), b.opened()]);
      const res = await kick({ tenant, user: 'alice', ttl_seconds: 60 });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).closed, 1);
      await a.until(() => a.events.some((e) => e.type === 'stream-error'));
      assert.equal(JSON.parse(a.events.find((e) => e.type === 'stream-error').data).code, 'kicked');
      // The client reconnects by itself and is refused.
      await a.until(() => a.errors.some((e) => e.code === 403), 10_000, 'refused reconnect');
      // Bob is untouched.
      await publish(worker.url, await publisher(tenant), { channel, event: 'x.y', data: 1 });
      await b.waitForData(1);
      const fresh = await fetch(streamUrl(worker.url, [channel]), { headers: { Authorization: `Bearer ${alice}` } });
      assert.equal(fresh.status, 403);
      assert.equal(await problemOf(fresh), 'revoked');
    } finally {
      a.close();
      b.close();
    }
  });

  test('a revoked user is admitted again once the revocation ends, and not before', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const dave = await subscriber(tenant, { sub: 'dave' });
    const open = () => fetch(streamUrl(worker.url, [channel]), { headers: { Authorization: `Bearer ${dave}` } });
    const kickedAt = Date.now();
    assert.equal((await kick({ tenant, user: 'dave', ttl_seconds: 2 })).status, 200);
    const refused = await open();
    assert.equal(refused.status, 403);
    assert.equal(await problemOf(refused), 'revoked');
    // Poll until admitted; the revocation is kept in whole seconds, so it
    // may end up to a second before the 2 s are up, never sooner.
    let admitted;
    for (;;) {
      const res = await open();
      if (res.status === 200) {
        admitted = Date.now();
        await res.body.cancel();
        break;
      }
      assert.equal(await problemOf(res), 'revoked');
      assert.ok(Date.now() - kickedAt < 15_000, 'still refused 15 s after a 2 s revocation');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(admitted - kickedAt >= 1_000, `admitted ${admitted - kickedAt} ms after a 2 s revocation`);
    // Admitted means streaming again.
    const s = subscribe(worker.url, [channel], { token: dave, types: ['x.y'] });
    try {
      await s.opened();
      await publish(worker.url, await publisher(tenant), { channel, event: 'x.y', data: 2 });
      await s.waitForData(1);
    } finally {
      s.close();
    }
  });

  test('kicking a token (jti) ends only streams opened with it', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const jti = randomUUID();
    const stolen = await subscriber(tenant, { sub: 'carol', jti });
    const other = await subscriber(tenant, { sub: 'carol', jti: randomUUID() });
    const s1 = subscribe(worker.url, [channel], { token: stolen });
    const s2 = subscribe(worker.url, [channel], { token: other, types: ['x.y'] });
    try {
      await Promise.all([s1.opened(), s2.opened()]);
      assert.equal((await (await kick({ tenant, jti })).json()).closed, 1);
      await s1.until(() => s1.events.some((e) => e.type === 'stream-error'));
      assert.equal(JSON.parse(s1.events.find((e) => e.type === 'stream-error').data).code, 'kicked');
      const again = await fetch(streamUrl(worker.url, [channel]), { headers: { Authorization: `Bearer ${stolen}` } });
      assert.equal(again.status, 403);
      assert.equal(await problemOf(again), 'revoked');
      // The other token's stream still delivers what is published after the kick.
      await publish(worker.url, await publisher(tenant), { channel, event: 'x.y', data: 'after' });
      await s2.waitForData(1);
      assert.deepEqual(s2.data().map((e) => e.data), ['"after"']);
      assert.ok(!s2.events.some((e) => e.type === 'stream-error'));
    } finally {
      s1.close();
      s2.close();
    }
  });

  test("kicking a tenant ends every stream on every one of its channels, and no other tenant's", async () => {
    const tenant = newTenant();
    const bystander = newTenant();
    const streams = [
      subscribe(worker.url, [channelOf(tenant, 'a')], { token: await subscriber(tenant, { sub: 'u1' }), types: ['x.y'] }),
      subscribe(worker.url, [channelOf(tenant, 'b'), channelOf(tenant, 'c')], { token: await subscriber(tenant, { sub: 'u2' }), types: ['x.y'] }),
    ];
    const bystanderChannel = channelOf(bystander);
    const other = subscribe(worker.url, [bystanderChannel], { token: await subscriber(bystander), types: ['x.y'] });
    try {
      await Promise.all([...streams, other].map((s) => s.opened()));
      const res = await kick({ tenant });
      // Sockets, not streams: closing one of a stream's channel sockets ends
      // the stream, which may release its other sockets first.
      assert.ok((await res.json()).closed >= streams.length);
      for (const s of streams) {
        await s.until(() => s.events.some((e) => e.type === 'stream-error'));
        assert.equal(JSON.parse(s.events.find((e) => e.type === 'stream-error').data).code, 'kicked');
      }
      // A tenant kick revokes no one: the clients reconnect by themselves
      // and are admitted again.
      for (const s of streams) await s.until(() => s.events.filter((e) => e.type === 'stream-open').length === 2, 10_000, 'readmission');
      // The bystander tenant's stream was never touched and still delivers
      // what is published after the kick; so do the readmitted streams.
      const pubTenant = await publisher(tenant);
      await publish(worker.url, await publisher(bystander), { channel: bystanderChannel, event: 'x.y', data: 'after' });
      await publish(worker.url, pubTenant, { channel: channelOf(tenant, 'a'), event: 'x.y', data: 'after' });
      await publish(worker.url, pubTenant, { channel: channelOf(tenant, 'c'), event: 'x.y', data: 'after' });
      for (const s of [...streams, other]) await s.waitForData(1);
      assert.deepEqual([...streams, other].map((s) => s.data().map((e) => e.data)), [['"after"'], ['"after"'], ['"after"']]);
      assert.ok(!other.events.some((e) => e.type === 'stream-error'));
      assert.equal(other.connections.length, 1);
    } finally {
      [...streams, other].forEach((s) => s.close());
    }
  });

  test('only a platform credential with events:admin may kick', async () => {
    const tenant = newTenant();
    for (const [credential, status] of [
      [`Bearer ${await token({ scope: 'events:publish' })}`, 403],
      [`Bearer ${await token({ tenant_id: tenant, scope: 'events:admin' })}`, 403],
      [null, 401],
    ]) {
      const res = await kick({ tenant }, credential);
      assert.equal(res.status, status);
    }
    assert.equal((await kick({ tenant: 'nope' })).status, 400);
    assert.equal((await kick({ tenant, user: 'a', jti: 'b' })).status, 400);
  });
});
