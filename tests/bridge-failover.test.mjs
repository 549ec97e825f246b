// The bridge when its own side fails: a standby bridge takes over the
// entries of one killed with entries pending; a bridge killed with batches in
// flight (stored at the edge, unanswered) resends them exactly; Valkey
// restarted without persistence (the group is created again); Valkey
// restarted under Pub/Sub load (reconnection with backoff). Deliveries are
// counted by real SSE subscribers on the worker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe } from './support/sse.mjs';
import { startValkey, RespClient } from './support/valkey.mjs';
import {
  startBridge, bridgeBuilt, BRIDGE_BIN, metric, waitFor, produce, assertExactlyOnceInOrder, sequences,
} from './support/bridge.mjs';
import { startEdgeProxy } from './support/edge-proxy.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let tmp;
let worker;
const running = new Set();
const closers = [];

before(async () => {
  assert.ok(bridgeBuilt(), `${BRIDGE_BIN} is missing: run cargo build --release -p edgestream-bridge`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgestream-bridge-failover-'));
  worker = await startWorker({ handleStructuredLogs: logCollector().handleStructuredLogs });
});

after(async () => {
  await Promise.all([...running].map((b) => b.stop('SIGKILL')));
  for (const close of closers.reverse()) await close();
  await worker?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function valkeyServer(name, options = {}) {
  const v = await startValkey({ dir: path.join(tmp, name), ...options });
  const redis = await v.client();
  closers.push(async () => {
    redis.close();
    await v.stop();
  });
  return { v, redis };
}

async function bridge(valkeyUrl, edgeUrl, args) {
  const b = await startBridge({ valkeyUrl, edgeUrl, args });
  running.add(b);
  return b;
}

async function stop(b, signal = 'SIGTERM') {
  running.delete(b);
  return b.stop(signal);
}

async function sse(tenant, channels, types = ['seq']) {
  const s = subscribe(worker.url, channels, { token: await subscriber(tenant), types });
  closers.push(async () => s.close());
  await s.opened();
  return s;
}

const GROUP = 'edgestream-bridge';
const pendingOf = async (redis, stream, consumer) => {
  if (!consumer) return (await redis.command('XPENDING', stream, GROUP))[0];
  return (await redis.command('XPENDING', stream, GROUP, '-', '+', 10_000, consumer)).length;
};

test('two bridges in one group: one is SIGKILLed with entries pending, the other claims them, each event reaches the edge once', async (t) => {
  const { v, redis } = await valkeyServer('standby');
  // The edge holds each answer a little, so the killed bridge surely has
  // batches stored at the edge and unacknowledged in Valkey.
  const proxy = await startEdgeProxy(worker.url, { plan: () => ({ holdMs: 150 }) });
  closers.push(() => proxy.stop());
  const stream = 'events-standby';
  const args = (name) => ['--no-pubsub', '--stream', stream, '--consumer', name, '--claim-idle-ms', '1000', '--batch-max', '20'];
  const a = await bridge(v.url, proxy.url, args('bridge-a'));
  const b = await bridge(v.url, proxy.url, args('bridge-b'));
  const tenant = newTenant();
  const channels = Array.from({ length: 3 }, (_, i) => channelOf(tenant, `s-${i}`));
  const sub = await sse(tenant, channels);
  let pendingAtKill = 0;
  await produce(redis, stream, channels, 120, {
    chunk: 20,
    pauseMs: 60,
    afterChunk: async (i) => {
      if (i !== 3) return;
      await waitFor(async () => (await pendingOf(redis, stream, 'bridge-a')) > 0, 10_000, 'entries pending at bridge-a');
      await stop(a, 'SIGKILL');
      pendingAtKill = await pendingOf(redis, stream, 'bridge-a');
    },
  });
  assert.ok(pendingAtKill > 0, 'bridge-a was killed with entries pending');
  t.diagnostic(`bridge-a killed with ${pendingAtKill} entries pending`);
  await sub.waitForData(360, 30_000);
  await sleep(300); // a duplicate would arrive now
  // Two consumers share the stream, so order across them is not promised;
  // exactly once is.
  for (const [channel, ns] of sequences(sub, channels)) {
    assert.deepEqual([...ns].sort((x, y) => x - y), Array.from({ length: 120 }, (_, i) => i), `${channel}: each event once`);
  }
  const m = await waitFor(async () => {
    const m = await b.metrics();
    return m.edgestream_bridge_claimed_total >= pendingAtKill && m;
  }, 10_000, 'the claim');
  t.diagnostic(`bridge-b claimed ${m.edgestream_bridge_claimed_total}, the edge answered ${metric(m, 'edgestream_bridge_duplicates_total', 'source="streams"')} of its resends as duplicates`);
  await waitFor(async () => (await pendingOf(redis, stream)) === 0, 10_000, 'no pending entries');
  assert.deepEqual(await stop(b), { code: 0, signal: null });
});

test('killed with batches in flight (stored at the edge, unanswered): the restart resends them and the edge delivers each once', async (t) => {
  const { v, redis } = await valkeyServer('in-flight');
  const proxy = await startEdgeProxy(worker.url, { plan: () => ({ holdMs: 5_000 }) });
  closers.push(() => proxy.stop());
  const stream = 'events-in-flight';
  const args = ['--no-pubsub', '--stream', stream, '--consumer', 'bridge-1', '--lanes', '2', '--batch-max', '50'];
  const first = await bridge(v.url, proxy.url, args);
  const tenant = newTenant();
  const channels = Array.from({ length: 4 }, (_, i) => channelOf(tenant, `f-${i}`));
  const sub = await sse(tenant, channels);
  await produce(redis, stream, channels, 100);
  // The four channels may all hash to one lane, so one held batch is the
  // least there is; the other lane, if it has any, is held a moment later.
  await waitFor(() => proxy.held().length >= 1, 10_000, 'a batch stored and unanswered');
  await sleep(500);
  const held = proxy.held();
  await stop(first, 'SIGKILL');
  const inFlight = held.reduce((n, r) => n + r.events.length, 0);
  const pending = await pendingOf(redis, stream);
  assert.ok(pending >= inFlight, `${pending} entries pending, ${inFlight} of them stored at the edge`);
  t.diagnostic(`killed with ${inFlight} events stored at the edge and unanswered, ${pending} entries pending`);
  proxy.plan = () => undefined;
  const second = await bridge(v.url, proxy.url, args);
  await sub.waitForData(400, 30_000);
  await sleep(300);
  assertExactlyOnceInOrder(sub, channels, 100);
  await waitFor(async () => (await pendingOf(redis, stream)) === 0, 10_000, 'no pending entries');
  const m = await second.metrics();
  assert.ok(metric(m, 'edgestream_bridge_duplicates_total', 'source="streams"') >= inFlight, 'the resent in-flight events were duplicates at the edge');
  assert.deepEqual(await stop(second), { code: 0, signal: null });
});

test('Valkey restarted without persistence: the bridge creates the group again and goes on; so it does when the stream is deleted', async () => {
  const { v, redis: first } = await valkeyServer('volatile', { appendonly: false });
  let redis = first;
  const stream = 'events-volatile';
  const b = await bridge(v.url, worker.url, ['--no-pubsub', '--stream', stream, '--retry-max-ms', '300']);
  const tenant = newTenant();
  const channels = [channelOf(tenant, 'v-0'), channelOf(tenant, 'v-1')];
  const sub = await sse(tenant, channels);
  await produce(redis, stream, channels, 50);
  await sub.waitForData(100, 10_000);
  redis.close();
  await v.restart({ downMs: 500 });
  redis = await RespClient.connect(v.port);
  closers.push(async () => redis.close());
  // The bridge may have created the group (and so the stream) again by now:
  // what shows the restart lost everything is that no entry is left.
  assert.equal(await redis.command('XLEN', stream), 0, 'the restart lost the stream and its entries');
  await waitFor(async () => (await redis.command('EXISTS', stream)) === 1, 10_000, 'the group created again');
  await produce(redis, stream, channels, 50, { from: 50 });
  await sub.waitForData(200, 10_000);
  // The group vanishes under a connected bridge: XREADGROUP answers NOGROUP.
  await redis.command('DEL', stream);
  await waitFor(() => b.lines().some((l) => /consumer group missing/.test(l.message)), 10_000, 'NOGROUP noticed');
  await produce(redis, stream, channels, 50, { from: 100 });
  await sub.waitForData(300, 10_000);
  await sleep(300);
  assertExactlyOnceInOrder(sub, channels, 150);
  assert.ok(b.lines().filter((l) => l.message === 'created the consumer group').length >= 3, 'created at start, after the restart, after the DEL');
  assert.deepEqual(await stop(b), { code: 0, signal: null });
});

test('Valkey restarted under Pub/Sub load: the bridge reconnects with growing delays and delivers what is published after, in order, once', async (t) => {
  const { v, redis: first } = await valkeyServer('pubsub-restart');
  first.close();
  const b = await bridge(v.url, worker.url, ['--retry-initial-ms', '100', '--retry-max-ms', '2000']);
  const tenant = newTenant();
  const channels = [channelOf(tenant, 'p-0'), channelOf(tenant, 'p-1')];
  const sub = await sse(tenant, channels);
  let publisher = await RespClient.connect(v.port);
  await waitFor(async () => (await publisher.command('PUBSUB', 'NUMSUB', 'events_channel'))[1] === 1, 10_000, 'the subscription');
  // A steady publisher that reconnects by itself, as an origin would.
  let n = 0;
  let publishing = true;
  const load = (async () => {
    while (publishing) {
      try {
        if (publisher.closed) publisher = await RespClient.connect(v.port);
        const i = n;
        await Promise.all(channels.map((channel, c) =>
          publisher.command('PUBLISH', 'events_channel', JSON.stringify({ channel, event: 'seq', data: { c, n: i } }))));
        n++;
      } catch {
        // Valkey is down: the message is gone, as Pub/Sub loses it.
      }
      await sleep(5);
    }
  })();
  await sub.waitForData(100, 10_000);
  await v.restart({ downMs: 1_500 });
  const restartedAt = n;
  await waitFor(async () => metric(await b.metrics(), 'edgestream_bridge_valkey_reconnects_total', 'source="pubsub"') >= 1, 10_000, 'a reconnection');
  await waitFor(() => sub.data().some((e) => JSON.parse(e.data).n > restartedAt + 50), 15_000, 'events published after the restart');
  publishing = false;
  await load;
  const last = n - 1;
  await waitFor(() => sub.data().some((e) => JSON.parse(e.data).n === last), 10_000, 'the last event');
  await sleep(200);
  publisher.close();
  // Lost while Valkey was down, but never twice, never out of order.
  for (const [channel, ns] of sequences(sub, channels)) {
    assert.ok(ns.every((x, i) => i === 0 || x > ns[i - 1]), `${channel}: strictly increasing`);
    assert.equal(ns.at(-1), last, `${channel}: the last event arrived`);
  }
  const delays = b.lines().filter((l) => l.message === 'Pub/Sub connection lost; reconnecting').map((l) => l.retry_in_ms);
  t.diagnostic(`reconnection delays while Valkey was down: ${delays.join(', ')} ms`);
  assert.ok(delays.length >= 2, `several attempts while down: ${delays}`);
  assert.ok(delays.every((d, i) => i === 0 || d >= delays[i - 1]), `the delay grows: ${delays}`);
  assert.deepEqual(await stop(b), { code: 0, signal: null });
});
