// The bridge against managed Valkey: TLS (rediss://) through a real TLS
// server (Debian's stunnel in front of the embedded valkey-server, with a
// throw-away CA made by openssl), ACL users with passwords, and client
// certificates. A configuration the server refuses ends the bridge at once
// with a message that says what to fix; it never hangs or retries forever.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe } from './support/sse.mjs';
import { startValkey, makeCertificates, startTlsFront } from './support/valkey.mjs';
import { startBridge, runBridgeToExit, bridgeBuilt, BRIDGE_BIN, metric } from './support/bridge.mjs';

// The ACL a deployment gives the bridge (docs/bridge.md): its Pub/Sub channel,
// its stream and dead-letter stream, and only the commands it sends.
const BRIDGE_ACL = [
  'on', '>s3cret-passw0rd', 'resetchannels', '&events_channel', 'resetkeys', '~tls-events', '~tls-events:dead-letter',
  '-@all', '+@connection', '+subscribe', '+xreadgroup', '+xack', '+xadd', '+xgroup|create', '+xautoclaim', '+multi', '+exec',
];

let tmp;
let valkey;
let redis;
let front;
let certs;
let edge;
const running = new Set();

before(async () => {
  assert.ok(bridgeBuilt(), `${BRIDGE_BIN} is missing: run cargo build --release -p edgestream-bridge`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgestream-bridge-tls-'));
  certs = makeCertificates(path.join(tmp, 'certs'));
  valkey = await startValkey({ dir: path.join(tmp, 'valkey') });
  redis = await valkey.client();
  await redis.command('ACL', 'SETUSER', 'edgestream-bridge', ...BRIDGE_ACL);
  front = await startTlsFront({ dir: tmp, valkey, certs });
  edge = await startWorker({ handleStructuredLogs: logCollector().handleStructuredLogs });
});

after(async () => {
  await Promise.all([...running].map((b) => b.stop('SIGKILL')));
  redis?.close();
  await front?.stop();
  await edge?.stop();
  await valkey?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const tlsUrl = (userinfo = '', port = front.port) => `rediss://${userinfo}127.0.0.1:${port}`;

async function bridge(valkeyUrl, env, args = []) {
  const b = await startBridge({ valkeyUrl, edgeUrl: edge.url, env, args });
  running.add(b);
  return b;
}

async function stop(b) {
  running.delete(b);
  return b.stop();
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

/** Publishes one Pub/Sub event and one Streams entry and waits for both at an SSE client. */
async function deliversBothSources(b) {
  const tenant = newTenant();
  const channel = channelOf(tenant);
  const sub = subscribe(edge.url, [channel], { token: await subscriber(tenant), types: ['tls.pubsub', 'tls.stream'] });
  try {
    await sub.opened();
    await waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'events_channel'))[1] >= 1, 10_000, 'the subscription');
    await redis.command('PUBLISH', 'events_channel', JSON.stringify({ channel, event: 'tls.pubsub', data: { via: 'pubsub' } }));
    await redis.command('XADD', 'tls-events', '*', 'channel', channel, 'event', 'tls.stream', 'data', '{"via":"stream"}');
    await sub.waitForData(2, 10_000);
    assert.deepEqual(sub.data().map((e) => [e.type, e.data]).sort(), [['tls.pubsub', '{"via":"pubsub"}'], ['tls.stream', '{"via":"stream"}']]);
    // The bridge counts a forward when the edge's answer reaches it, which
    // can be after the SSE client has the event.
    const forwarded = async () => {
      const m = await b.metrics();
      return ['pubsub', 'streams'].map((source) => metric(m, 'edgestream_bridge_forwarded_total', `source="${source}"`));
    };
    await waitFor(async () => (await forwarded()).every((n) => n >= 1), 5_000, 'both forwards counted');
    assert.deepEqual(await forwarded(), [1, 1]);
  } finally {
    sub.close();
  }
}

/** The bridge's error line on exit. */
function refusal(result) {
  const line = result.lines.find((l) => l.level === 'ERROR');
  assert.ok(line, `an ERROR line in ${result.log}`);
  return line.error;
}

test('rediss:// with VALKEY_CA_FILE and an ACL user: Pub/Sub and Streams both reach the edge', async () => {
  const b = await bridge(tlsUrl('edgestream-bridge:s3cret-passw0rd@'), { VALKEY_CA_FILE: certs.ca }, ['--stream', 'tls-events']);
  await deliversBothSources(b);
  assert.doesNotMatch(b.log(), /s3cret-passw0rd/, 'the password never reaches the log');
  assert.match(b.log(), /rediss:\/\/edgestream-bridge:\*\*\*@127\.0\.0\.1/);
  assert.deepEqual(await stop(b), { code: 0, signal: null });
});

test('a client certificate, for a server that requires one', async () => {
  const env = { VALKEY_CA_FILE: certs.ca, VALKEY_CLIENT_CERT: certs.clientCert, VALKEY_CLIENT_KEY: certs.clientKey };
  const b = await bridge(tlsUrl('edgestream-bridge:s3cret-passw0rd@', front.mtlsPort), env, ['--stream', 'tls-events']);
  await deliversBothSources(b);
  assert.deepEqual(await stop(b), { code: 0, signal: null });
});

test('refusals end the bridge at once with what to fix', async (t) => {
  const cases = [
    {
      what: 'no CA file: the throw-away CA is not among the system roots',
      url: tlsUrl(),
      env: {},
      expect: /not signed by a CA this bridge trusts: give its CA with VALKEY_CA_FILE .*UnknownIssuer/,
    },
    {
      what: 'no client certificate for a server that requires one',
      url: tlsUrl('', front.mtlsPort),
      env: { VALKEY_CA_FILE: certs.ca },
      expect: /requires a client certificate: set VALKEY_CLIENT_CERT and VALKEY_CLIENT_KEY/,
    },
    {
      what: 'a wrong password',
      url: tlsUrl('edgestream-bridge:not-the-password@'),
      env: { VALKEY_CA_FILE: certs.ca },
      expect: /Valkey refused the user name or password in VALKEY_URL/,
      secret: 'not-the-password',
    },
    {
      what: 'a CA file that does not exist',
      url: tlsUrl(),
      env: { VALKEY_CA_FILE: path.join(tmp, 'missing.pem') },
      expect: /VALKEY_CA_FILE: cannot read .*missing\.pem/,
    },
    {
      what: 'TLS files with a plain redis:// URL',
      url: `redis://127.0.0.1:${valkey.port}`,
      env: { VALKEY_CA_FILE: certs.ca },
      expect: /need a rediss:\/\/ VALKEY_URL/,
    },
    {
      what: 'certificate checks turned off',
      url: `${tlsUrl()}/#insecure`,
      env: {},
      expect: /#insecure/,
    },
  ];
  for (const c of cases) {
    const result = await runBridgeToExit({ valkeyUrl: c.url, edgeUrl: edge.url, env: c.env });
    assert.equal(result.code, 2, `${c.what}: exit code 2 (configuration), got ${result.code} ${result.signal}\n${result.log}`);
    assert.ok(result.ms < 8_000, `${c.what}: refused within seconds, took ${result.ms} ms`);
    assert.match(refusal(result), c.expect, c.what);
    if (c.secret) assert.ok(!result.log.includes(c.secret), 'the password never reaches the log');
    t.diagnostic(`${c.what}: exit 2 after ${result.ms} ms: ${refusal(result)}`);
  }
});

test('an ACL user may only do what its channel and key patterns allow', async () => {
  // A channel outside the user's &pattern: Valkey refuses SUBSCRIBE, and the
  // bridge says why while it keeps trying (an ACL can be fixed live).
  const b = await bridge(tlsUrl('edgestream-bridge:s3cret-passw0rd@'), { VALKEY_CA_FILE: certs.ca }, ['--pubsub-channel', 'other_channel', '--retry-max-ms', '200']);
  const line = await waitFor(() => b.lines().find((l) => /SUBSCRIBE other_channel/.test(l.error ?? '')), 10_000, 'the NOPERM log line');
  assert.match(line.error, /NOPERM|may not/);
  assert.match(line.error, /&channel/);
  assert.equal(b.proc.exitCode, null, 'still running');
  await stop(b);
});
