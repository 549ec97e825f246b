// edgestream-bridge end to end: a real Valkey server, the worker in workerd,
// the bridge binary and SSE clients. Covers both sources (Pub/Sub with
// django-eventstream's message and the native form; Streams with a consumer
// group), malformed input, and the failures the bridge must survive: being
// killed, Valkey restarting, the worker going away for seconds. (TLS, credentials,
// a failing edge and failover have files of their own: tests/bridge-*.test.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWorker, logCollector, ROOT } from './support/worker.mjs';
import { subscriber, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe } from './support/sse.mjs';
import { startValkey } from './support/valkey.mjs';
import {
  startBridge, bridgeBuilt, BRIDGE_BIN, metric, waitFor, produce as produceTo, assertExactlyOnceInOrder, sequences, fieldsOf,
} from './support/bridge.mjs';
import { startEdgeProxy } from './support/edge-proxy.mjs';

const PYTHON = path.join(ROOT, '.tools/venv/bin/python');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let tmp;
let valkey;
let redis;
let edge;
let edgePort;
const workerLogs = logCollector();
const bridges = new Set();
const clients = new Set();

async function launchWorker(port = 0) {
  return startWorker({
    persistPath: path.join(tmp, 'worker'),
    port,
    handleStructuredLogs: workerLogs.handleStructuredLogs,
  });
}

before(async () => {
  assert.ok(bridgeBuilt(), `${BRIDGE_BIN} is missing: run cargo build --release -p edgestream-bridge`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgestream-bridge-'));
  valkey = await startValkey({ dir: path.join(tmp, 'valkey') });
  redis = await valkey.client();
  edge = await launchWorker();
  edgePort = Number(new URL(edge.url).port);
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all([...bridges].map((b) => b.stop('SIGKILL')));
  redis?.close();
  await edge?.stop().catch(() => {});
  await valkey?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function bridge(args = [], edgeUrl = edge.url) {
  const b = await startBridge({ valkeyUrl: valkey.url, edgeUrl, args });
  bridges.add(b);
  return b;
}

async function stopBridge(b, signal = 'SIGTERM', graceMs = 15_000) {
  const result = await b.stop(signal, graceMs);
  bridges.delete(b);
  return result;
}

function sse(channels, tenant, types) {
  return subscriber(tenant).then((token) => {
    const s = subscribe(edge.url, channels, { token, types });
    clients.add(s);
    return s;
  });
}

/** Resolves once the bridge has subscribed to events_channel. */
async function subscribed() {
  await waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'events_channel'))[1] >= 1, 10_000, 'the bridge to subscribe');
}

function runPython(script, args, env) {
  return new Promise((resolve, reject) => {
    const proc = spawn(PYTHON, [path.join(ROOT, 'tests/python', script), ...args], {
      cwd: path.join(ROOT, 'tests/python'),
      env: { PATH: process.env.PATH, PYTHONDONTWRITEBYTECODE: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${script} exited ${code}: ${out}`));
    });
  });
}

const produce = (stream, channels, count, options) => produceTo(redis, stream, channels, count, options);

test('django-eventstream send_event() with EVENTSTREAM_REDIS reaches an SSE client with its type and data', async () => {
  const b = await bridge();
  await subscribed();
  const tenant = newTenant();
  const channel = channelOf(tenant);
  const sub = await sse([channel], tenant, ['scan.progress', 'scan.note', 'scan.completed']);
  await sub.opened();
  await runPython('send_events.py', [channel], { VALKEY_PORT: String(valkey.port) });
  await sub.waitForData(3, 10_000);
  assert.deepEqual(
    sub.data().map((e) => [e.type, e.data]),
    [
      // The value send_event() was given, as Python's json.dumps wrote it
      // (key order, escapes), not a doubly encoded string.
      ['scan.progress', '{"pct":42,"stage":"scan","items":[1,2.5,null],"note":"caf\\u00e9 \\"quoted\\""}'],
      // json_encode=False text that is not JSON arrives as a JSON string.
      ['scan.note', '"plain text, not JSON"'],
      ['scan.completed', '{"ok":true}'],
    ],
  );
  assert.deepEqual(JSON.parse(sub.data()[0].data).note, 'café "quoted"');
  const m = await b.metrics();
  assert.equal(metric(m, 'edgestream_bridge_forwarded_total', 'source="pubsub"'), 3);
  sub.close();
  const exit = await stopBridge(b);
  assert.deepEqual(exit, { code: 0, signal: null }, b.log());
});

test('Pub/Sub: the native form, and malformed messages are counted and skipped', async () => {
  const b = await bridge();
  await subscribed();
  const tenant = newTenant();
  const channel = channelOf(tenant);
  const sub = await sse([channel], tenant, ['scan.progress']);
  await sub.opened();
  const pub = (message) => redis.command('PUBLISH', 'events_channel', typeof message === 'string' ? message : JSON.stringify(message));
  await pub({ channel, event: 'scan.progress', data: { pct: 1 }, idempotency_key: 'native-1' });
  await pub('not json {');
  await pub({ channel: 'scan-progress:not-a-tenant:1', event: 'scan.progress', data: {} });
  await pub({ channel, event: 'scan.progress', data: 'x'.repeat(70_000) });
  await pub({ channel, event: 'scan.progress' });
  await pub({ channel, event: 'stream-open', data: 1 });
  // The same idempotency key again: the edge has it and delivers nothing.
  await pub({ channel, event: 'scan.progress', data: { pct: 1 }, idempotency_key: 'native-1' });
  await pub({ channel, event: 'scan.progress', data: { pct: 2 } });
  await sub.waitForData(2, 10_000);
  await waitFor(async () => metric(await b.metrics(), 'edgestream_bridge_duplicates_total', 'source="pubsub"') === 1, 5_000, 'the duplicate');
  assert.deepEqual(sub.data().map((e) => e.data), ['{"pct":1}', '{"pct":2}']);
  const m = await b.metrics();
  const rejected = (reason) => metric(m, 'edgestream_bridge_rejected_total', `source="pubsub",reason="${reason}"`);
  assert.equal(metric(m, 'edgestream_bridge_received_total', 'source="pubsub"'), 8);
  assert.equal(rejected('not_json'), 1);
  assert.equal(rejected('invalid_channel'), 1);
  assert.equal(rejected('event_too_large'), 1);
  assert.equal(rejected('unrecognised_message'), 1);
  assert.equal(rejected('invalid_body'), 1);
  assert.equal(metric(m, 'edgestream_bridge_forwarded_total', 'source="pubsub"'), 2);
  assert.equal(m['edgestream_bridge_retried_total'], 0);
  assert.equal(b.proc.exitCode, null, 'the bridge is still running');
  sub.close();
  await stopBridge(b);
});

test('SIGTERM: queued and in-flight batches are finished before the bridge exits', async (t) => {
  // Small batches on one lane, so that plenty is still queued at SIGTERM.
  const b = await bridge(['--lanes', '1', '--batch-max', '25', '--shutdown-timeout-seconds', '40']);
  await subscribed();
  const tenant = newTenant();
  const channels = Array.from({ length: 5 }, (_, i) => channelOf(tenant, `t-${i}`));
  const sub = await sse(channels, tenant, ['seq']);
  await sub.opened();
  const publishing = [];
  for (let n = 0; n < 600; n++) {
    channels.forEach((channel, c) => {
      publishing.push(redis.command('PUBLISH', 'events_channel', JSON.stringify({ channel, event: 'seq', data: { c, n } })));
    });
  }
  const before = await waitFor(async () => {
    const m = await b.metrics();
    return m['edgestream_bridge_received_total{source="pubsub"}'] >= 1_000 && m;
  }, 10_000, '1,000 received');
  const exit = await stopBridge(b, 'SIGTERM', 45_000);
  await Promise.all(publishing);
  assert.deepEqual(exit, { code: 0, signal: null }, b.log());
  const summary = b.log().match(/stopped: received=(\d+) forwarded=(\d+) duplicates=0 rejected=0 dropped=0/);
  assert.ok(summary, b.log());
  const [received, forwarded] = [Number(summary[1]), Number(summary[2])];
  assert.ok(received >= 1_000, `received ${received}`);
  assert.equal(forwarded, received, 'everything read before SIGTERM was delivered');
  const forwardedBefore = before['edgestream_bridge_forwarded_total{source="pubsub"}'];
  assert.ok(forwardedBefore < received, `${forwardedBefore} of ${received} had been forwarded at SIGTERM`);
  t.diagnostic(`${received} events read before SIGTERM, ${forwardedBefore} forwarded by then, all delivered`);
  await sub.waitForData(forwarded, 20_000);
  await sleep(200);
  assert.equal(sub.data().length, forwarded);
  // Pub/Sub delivers in publish order and the bridge stops reading at
  // SIGTERM, so each channel got a prefix of what was published: every event
  // up to some point, once, in order.
  for (const [channel, ns] of sequences(sub, channels)) {
    assert.deepEqual(ns, Array.from({ length: ns.length }, (_, i) => i), `${channel}: 0..${ns.length - 1} once, in order`);
  }
  sub.close();
});

test('Streams: 5,000 events while the bridge is killed with entries pending and restarted twice arrive exactly once, in order', async (t) => {
  const stream = 'events-kill';
  const tenant = newTenant();
  const channels = Array.from({ length: 5 }, (_, i) => channelOf(tenant, `job-${i}`));
  const sub = await sse(channels, tenant, ['seq']);
  await sub.opened();
  // The edge's answers are held a little on their way back, so that a batch
  // the edge has stored and the bridge has not yet acknowledged exists at the
  // moment of the kill: the kill waits for one.
  const proxy = await startEdgeProxy(edge.url, { plan: () => ({ holdMs: 60 }) });
  const args = ['--no-pubsub', '--stream', stream, '--consumer', 'bridge-a'];
  let b = await bridge(args, proxy.url);
  const perChannel = 1_000;
  const kills = [];
  const producing = produce(stream, channels, perChannel, {
    chunk: 40,
    pauseMs: 100,
    afterChunk: async (i) => {
      if (i !== 7 && i !== 16) return;
      await waitFor(() => proxy.held().length > 0, 10_000, 'a batch stored and unanswered');
      await stopBridge(b, 'SIGKILL');
      const [pending] = await redis.command('XPENDING', stream, 'edgestream-bridge');
      kills.push(pending);
      t.diagnostic(`killed after ${sub.data().length} events delivered, ${pending} entries pending`);
      assert.ok(pending > 0, 'killed while entries were pending');
      b = await bridge(args, proxy.url);
    },
  });
  await producing;
  assert.equal(kills.length, 2);
  await sub.waitForData(5 * perChannel, 60_000);
  await sleep(300); // anything extra (a duplicate) would arrive now
  assertExactlyOnceInOrder(sub, channels, perChannel);
  // Everything acknowledged: nothing left pending in the group.
  await waitFor(async () => (await redis.command('XPENDING', stream, 'edgestream-bridge'))[0] === 0, 5_000, 'no pending entries');
  sub.close();
  await stopBridge(b);
  await proxy.stop();
});

test('Streams: malformed entries and entries the edge refuses go to the dead-letter stream', async () => {
  const stream = 'events-dead';
  const tenant = newTenant();
  const channel = channelOf(tenant);
  const sub = await sse([channel], tenant, ['seq']);
  await sub.opened();
  // The bridge allows larger events than the edge, so the edge's 413 is what
  // refuses the big one (a 4xx is not retried).
  const b = await bridge(['--no-pubsub', '--stream', stream, '--max-event-bytes', '1000000']);
  const add = (...fields) => redis.command('XADD', stream, '*', ...fields);
  await add('channel', channel, 'event', 'seq', 'data', '{"n":0}');
  const notJson = await add('message', 'not json');
  const badChannel = await add('channel', 'nope', 'event', 'seq', 'data', '1');
  const tooBig = await add('channel', channel, 'event', 'seq', 'data', JSON.stringify('x'.repeat(100_000)));
  await add('channel', channel, 'event', 'seq', 'data', '{"n":1}');
  await sub.waitForData(2, 10_000);
  const dead = await waitFor(async () => {
    const entries = await redis.command('XRANGE', `${stream}:dead-letter`, '-', '+');
    return entries.length === 3 && entries;
  }, 10_000, 'three dead letters');
  const fields = fieldsOf;
  assert.deepEqual(dead.map((e) => fields(e).dead_letter_entry_id), [notJson, badChannel, tooBig]);
  assert.match(fields(dead[0]).dead_letter_reason, /not JSON/);
  assert.equal(fields(dead[0]).message, 'not json');
  assert.match(fields(dead[1]).dead_letter_reason, /invalid_channel/);
  assert.match(fields(dead[2]).dead_letter_reason, /413 event_too_large/);
  assert.deepEqual(sub.data().map((e) => e.data), ['{"n":0}', '{"n":1}']);
  await waitFor(async () => (await redis.command('XPENDING', stream, 'edgestream-bridge'))[0] === 0, 5_000, 'no pending entries');
  const m = await b.metrics();
  assert.equal(m['edgestream_bridge_dead_lettered_total'], 3);
  assert.equal(metric(m, 'edgestream_bridge_rejected_total', 'source="streams",reason="event_too_large"'), 1);
  sub.close();
  await stopBridge(b);
});

test('Streams: Valkey restarted mid-flow, the bridge reconnects and loses nothing', async () => {
  const stream = 'events-valkey-restart';
  const tenant = newTenant();
  const channels = Array.from({ length: 3 }, (_, i) => channelOf(tenant, `v-${i}`));
  const sub = await sse(channels, tenant, ['seq']);
  await sub.opened();
  const b = await bridge(['--no-pubsub', '--stream', stream, '--retry-max-ms', '500']);
  await produce(stream, channels, 600, { chunk: 100 });
  await sub.waitForData(300, 20_000);
  redis.close();
  await valkey.restart({ downMs: 1_000 });
  redis = await valkey.client();
  await produce(stream, channels, 400, { chunk: 100, from: 600 });
  await sub.waitForData(3 * 1_000, 30_000);
  await sleep(300);
  assertExactlyOnceInOrder(sub, channels, 1_000);
  const m = await b.metrics();
  assert.ok(metric(m, 'edgestream_bridge_valkey_reconnects_total', 'source="streams"') >= 1, 'reconnected');
  await waitFor(async () => (await redis.command('XPENDING', stream, 'edgestream-bridge'))[0] === 0, 5_000, 'no pending entries');
  sub.close();
  await stopBridge(b);
});

test('Streams: the edge (the worker itself) down for seconds, everything is delivered once it is back', async () => {
  const stream = 'events-edge-down';
  const tenant = newTenant();
  const channels = [channelOf(tenant, 'e-0'), channelOf(tenant, 'e-1')];
  const sub = await sse(channels, tenant, ['seq']);
  await sub.opened();
  const b = await bridge(['--no-pubsub', '--stream', stream, '--retry-max-ms', '1000']);
  await produce(stream, channels, 100);
  await sub.waitForData(200, 10_000);
  await edge.stop();
  const downAt = Date.now();
  await produce(stream, channels, 300, { from: 100 });
  await waitFor(async () => (await b.metrics())['edgestream_bridge_retried_total'] >= 2, 10_000, 'retries');
  await sleep(4_000 - (Date.now() - downAt));
  edge = await launchWorker(edgePort);
  // The SSE client reconnects by itself with Last-Event-ID.
  await sub.waitForData(2 * 400, 30_000);
  await sleep(300);
  assertExactlyOnceInOrder(sub, channels, 400);
  const m = await b.metrics();
  assert.equal(metric(m, 'edgestream_bridge_forwarded_total', 'source="streams"') + metric(m, 'edgestream_bridge_duplicates_total', 'source="streams"'), 800);
  sub.close();
  // SIGTERM: a clean, prompt exit.
  const started = Date.now();
  assert.deepEqual(await stopBridge(b), { code: 0, signal: null });
  assert.ok(Date.now() - started < 5_000, 'stopped promptly');
});
