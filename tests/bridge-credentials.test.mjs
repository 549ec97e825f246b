// The bridge's own narrow credential: an API key (preferred) or a
// PUBLISH_TOKEN, both working against a relay that verifies RS256 only (no
// JWT_SECRET at the edge); tokens minted from JWT_SECRET (local use) that say
// `events:platform` explicitly; a tenant-scoped bridge that refuses another
// tenant's events itself; and plain http:// refused except on loopback. What
// the bridge sends is read at a proxy in front of the real worker.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPair, exportSPKI, SignJWT } from 'jose';
import { startWorker, logCollector, ROOT } from './support/worker.mjs';
import { subscriber, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe } from './support/sse.mjs';
import { startValkey } from './support/valkey.mjs';
import { startBridge, runBridgeToExit, bridgeBuilt, BRIDGE_BIN, metric } from './support/bridge.mjs';
import { startEdgeProxy, claimsOf } from './support/edge-proxy.mjs';

let tmp;
let valkey;
let redis;
const running = new Set();
const quiet = logCollector().handleStructuredLogs;
const closers = [];

before(async () => {
  assert.ok(bridgeBuilt(), `${BRIDGE_BIN} is missing: run cargo build --release -p edgestream-bridge`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgestream-bridge-cred-'));
  valkey = await startValkey({ dir: path.join(tmp, 'valkey') });
  redis = await valkey.client();
});

after(async () => {
  await Promise.all([...running].map((b) => b.stop('SIGKILL')));
  for (const close of closers.reverse()) await close();
  redis?.close();
  await valkey?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function bridge(options) {
  const b = await startBridge({ valkeyUrl: valkey.url, ...options });
  running.add(b);
  return b;
}

async function stop(b) {
  running.delete(b);
  assert.deepEqual(await b.stop(), { code: 0, signal: null }, b.log());
}

async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until `n` bridges are subscribed to events_channel. */
const subscribed = (n = 1) =>
  waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'events_channel'))[1] === n, 10_000, `${n} subscriber(s)`);

const publish = (channel, data, event = 'cred.test') =>
  redis.command('PUBLISH', 'events_channel', JSON.stringify({ channel, event, data }));

/** Provisions an API key in the worker's API_KEYS namespace, as scripts/api-key.mjs tells an operator to. */
async function provisionKey(worker, { name, scope, tenant }) {
  const args = [path.join(ROOT, 'scripts/api-key.mjs'), '--name', name, '--scope', scope, ...(tenant ? ['--tenant', tenant] : [])];
  const out = execFileSync('node', args, { encoding: 'utf8' });
  const key = out.match(/API key \(shown once\): (\S+)/)[1];
  const [, fingerprint, record] = out.match(/kv key put --binding API_KEYS (\w+) '(.*)'/);
  await (await worker.mf.getKVNamespace('API_KEYS')).put(fingerprint, record);
  return key;
}

describe('a relay with HS256 and API keys', () => {
  let worker;
  let proxy;
  before(async () => {
    worker = await startWorker({ kvNamespaces: ['API_KEYS'], handleStructuredLogs: quiet });
    proxy = await startEdgeProxy(worker.url);
    closers.push(() => worker.stop(), () => proxy.stop());
  });

  async function sse(tenant, channels, types = ['cred.test']) {
    const s = subscribe(worker.url, channels, { token: await subscriber(tenant), types });
    closers.push(async () => s.close());
    await s.opened();
    return s;
  }

  test('an API key is sent as Api-Key and never logged; a platform key publishes to every tenant', async () => {
    const key = await provisionKey(worker, { name: 'bridge', scope: 'events:publish events:platform' });
    const b = await bridge({ edgeUrl: proxy.url, credential: { PUBLISH_API_KEY: key } });
    await subscribed();
    const [a, z] = [newTenant(), newTenant()];
    const [subA, subZ] = [await sse(a, [channelOf(a, 'k')]), await sse(z, [channelOf(z, 'k')])];
    const from = proxy.requests.length;
    await publish(channelOf(a, 'k'), { to: 'a' });
    await publish(channelOf(z, 'k'), { to: 'z' });
    await subA.waitForData(1, 10_000);
    await subZ.waitForData(1, 10_000);
    assert.deepEqual([subA.data()[0].data, subZ.data()[0].data], ['{"to":"a"}', '{"to":"z"}']);
    const sent = proxy.requests.slice(from);
    assert.ok(sent.length >= 1 && sent.every((r) => r.headers.authorization === `Api-Key ${key}`), 'Api-Key header');
    assert.ok(!b.log().includes(key), 'the key never reaches the log');
    assert.match(b.lines().find((l) => l.message === 'edgestream-bridge started').credential, /API key/);
    await stop(b);
  });

  test('minted tokens (local use) carry events:platform explicitly, nothing more', async () => {
    const b = await bridge({ edgeUrl: proxy.url });
    await subscribed();
    const tenant = newTenant();
    const sub = await sse(tenant, [channelOf(tenant, 'm')]);
    const from = proxy.requests.length;
    await publish(channelOf(tenant, 'm'), 1);
    await sub.waitForData(1, 10_000);
    const claims = claimsOf(proxy.requests[from].headers.authorization);
    assert.equal(claims.scope, 'events:publish events:platform');
    assert.equal(claims.tenant_id, undefined);
    assert.equal(claims.sub, 'edgestream-bridge');
    assert.equal(claims.exp - claims.iat, 300 + 5, 'short-lived');
    await stop(b);
  });

  test('a tenant-scoped bridge refuses another tenant\'s events itself, and its tokens carry the tenant', async () => {
    const [a, other] = [newTenant(), newTenant()];
    const stream = 'tenant-events';
    const b = await bridge({
      edgeUrl: proxy.url,
      args: ['--lanes', '1', '--stream', stream, '--tenant', `pubsub:events_channel=${a},stream:${stream}=${a}`],
    });
    await subscribed();
    const mine = channelOf(a, 'own');
    const theirs = channelOf(other, 'victim');
    const subA = await sse(a, [mine], ['pubsub', 'streams']);
    const subOther = await sse(other, [theirs], ['pubsub', 'streams']);
    const from = proxy.requests.length;
    // Interleaved on one lane: a refused event must not hold up the next.
    await publish(mine, 1, 'pubsub');
    await publish(theirs, 'forged', 'pubsub');
    await publish(mine, 2, 'pubsub');
    const add = (channel, data) => redis.command('XADD', stream, '*', 'channel', channel, 'event', 'streams', 'data', JSON.stringify(data));
    await add(mine, 3);
    const forged = await add(theirs, 'forged');
    await add(mine, 4);
    await subA.waitForData(4, 10_000);
    const byType = (t) => subA.data().filter((e) => e.type === t).map((e) => e.data);
    assert.deepEqual(byType('pubsub'), ['1', '2']);
    assert.deepEqual(byType('streams'), ['3', '4']);
    const m = await waitFor(async () => {
      const m = await b.metrics();
      return m['edgestream_bridge_dead_lettered_total'] === 1 && m;
    }, 5_000, 'the dead letter');
    assert.equal(metric(m, 'edgestream_bridge_rejected_total', 'source="pubsub",reason="tenant_mismatch"'), 1);
    assert.equal(metric(m, 'edgestream_bridge_rejected_total', 'source="streams",reason="tenant_mismatch"'), 1);
    const [dead] = await redis.command('XRANGE', `${stream}:dead-letter`, '-', '+');
    const fields = Object.fromEntries(dead[1].flatMap((v, i, all) => (i % 2 ? [] : [[v, all[i + 1]]])));
    assert.equal(fields.dead_letter_entry_id, forged);
    assert.match(fields.dead_letter_reason, new RegExp(`^tenant_mismatch: the channel belongs to tenant ${other}`));
    // Never forwarded: no request named the other tenant's channel, and every
    // token the bridge sent was for tenant `a`, without platform rights.
    const sent = proxy.requests.slice(from);
    assert.ok(sent.length >= 1);
    assert.ok(sent.every((r) => r.events.every((e) => e.channel === mine)), 'only tenant a\'s channel was sent');
    for (const r of sent) {
      const claims = claimsOf(r.headers.authorization);
      assert.equal(claims.tenant_id, a);
      assert.equal(claims.scope, 'events:publish');
    }
    const refusal = b.lines().find((l) => l.reason === 'tenant_mismatch');
    assert.ok(refusal && !JSON.stringify(refusal).includes('forged'), 'logged, without the event data');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(subOther.data().length, 0, 'nothing reached the other tenant');
    await waitFor(async () => (await redis.command('XPENDING', stream, 'edgestream-bridge'))[0] === 0, 5_000, 'no pending entries');
    await stop(b);
  });

  test('configurations that would leak the credential or have none are refused at start', async () => {
    const cases = [
      { what: 'plain http:// to another host', edgeUrl: 'http://relay.example.com', expect: /in clear/ },
      { what: 'plain http:// to a private address', edgeUrl: 'http://10.0.0.5:8787', expect: /in clear/ },
      { what: 'an API key that cannot be one', edgeUrl: proxy.url, credential: { PUBLISH_API_KEY: 'has a space' }, expect: /PUBLISH_API_KEY is not an API key/ },
      { what: 'a tenant map that misses a source', edgeUrl: proxy.url, args: ['--tenant', `stream:x=${newTenant()}`], expect: /pubsub:events_channel has no tenant/ },
      { what: 'two credentials at once', edgeUrl: proxy.url, credential: { PUBLISH_API_KEY: 'es_a', JWT_SECRET: 's' }, expect: /cannot be used with/ },
    ];
    for (const c of cases) {
      const r = await runBridgeToExit({ valkeyUrl: valkey.url, edgeUrl: c.edgeUrl, credential: c.credential, args: c.args });
      assert.equal(r.code, 2, `${c.what}: exit 2, got ${r.code} ${r.signal}\n${r.log}`);
      assert.match(r.log, c.expect, c.what);
      assert.ok(!r.log.includes('has a space'), 'the rejected value is not echoed');
    }
    // Loopback by name is this machine too.
    const local = await bridge({ edgeUrl: proxy.url.replace('127.0.0.1', 'localhost') });
    await stop(local);
  });
});

describe('a relay that verifies RS256 only (no JWT_SECRET at the edge)', () => {
  let worker;
  let keys;
  before(async () => {
    keys = await generateKeyPair('RS256');
    worker = await startWorker({
      vars: { JWT_SECRET: '', JWT_PUBLIC_KEY: await exportSPKI(keys.publicKey) },
      kvNamespaces: ['API_KEYS'],
      handleStructuredLogs: quiet,
    });
    closers.push(() => worker.stop());
  });

  const rs256 = (claims) =>
    new SignJWT({ token_type: 'access', ...claims })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(keys.privateKey);

  test('the bridge publishes with an API key and with an RS256 PUBLISH_TOKEN; minting from a secret is refused there', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'rs');
    const sub = subscribe(worker.url, [channel], { token: await rs256({ sub: 'u', tenant_id: tenant }), types: ['cred.test'] });
    closers.push(async () => sub.close());
    await sub.opened();
    const credentials = [
      ['API key', { PUBLISH_API_KEY: await provisionKey(worker, { name: 'bridge-rs', scope: 'events:publish events:platform' }) }],
      ['PUBLISH_TOKEN', { PUBLISH_TOKEN: await rs256({ sub: 'edgestream-bridge', scope: 'events:publish events:platform' }) }],
    ];
    for (const [i, [what, credential]] of credentials.entries()) {
      const b = await bridge({ edgeUrl: worker.url, credential });
      await subscribed();
      await publish(channel, { via: what });
      await sub.waitForData(i + 1, 10_000);
      assert.equal(sub.data()[i].data, JSON.stringify({ via: what }), what);
      await stop(b);
    }
    // The control: a token minted from a secret the relay does not have is
    // refused (401), counted, and delivers nothing.
    const minted = await bridge({ edgeUrl: worker.url });
    await subscribed();
    await publish(channel, { via: 'minted' });
    await waitFor(async () => metric(await minted.metrics(), 'edgestream_bridge_rejected_total', 'source="pubsub",reason="invalid_token"') === 1, 10_000, 'the 401');
    await stop(minted);
    assert.equal(sub.data().length, 2);
  });
});
