// Measures the bridge on this machine: throughput (events/s from Valkey to
// the edge's 202) for both sources, and the latency the bridge adds on the
// way from an origin to an SSE subscriber, against publishing over HTTP
// directly. Everything runs on loopback: a Valkey server, the worker in
// workerd, the release binary.
//
//   cargo build --release -p edgestream-bridge && node bridge/measure.mjs
//   EDGESTREAM_BRIDGE_BIN=$(bash bridge/build-static) node bridge/measure.mjs   # the static binary
//
// Options (environment): MEASURE_EVENTS (default 20000), MEASURE_CHANNELS
// (default 20), MEASURE_LATENCY_EVENTS (default 500), MEASURE_RATE (events/s
// per path for latency, default 50), MEASURE_BRIDGE_ARGS (extra flags for the
// bridge, e.g. "--linger-ms 0").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { startWorker } from '../tests/support/worker.mjs';
import { subscriber, platformPublisher, newTenant, channelOf } from '../tests/support/tokens.mjs';
import { subscribe, publish } from '../tests/support/sse.mjs';
import { startValkey } from '../tests/support/valkey.mjs';
import { startBridge } from '../tests/support/bridge.mjs';

const EVENTS = Number(process.env.MEASURE_EVENTS ?? 20_000);
const CHANNELS = Number(process.env.MEASURE_CHANNELS ?? 20);
const LATENCY_EVENTS = Number(process.env.MEASURE_LATENCY_EVENTS ?? 500);
const RATE = Number(process.env.MEASURE_RATE ?? 50);
const EXTRA = (process.env.MEASURE_BRIDGE_ARGS ?? '').split(' ').filter(Boolean);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Peak resident memory of a process in MiB (VmHWM), from /proc. */
function peakRssMiB(pid) {
  try {
    const kb = Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+) kB/m)[1]);
    return kb / 1024;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgestream-measure-'));
const valkey = await startValkey({ dir: path.join(tmp, 'valkey'), appendonly: false });
const redis = await valkey.client();
const edge = await startWorker({ persistPath: path.join(tmp, 'worker'), handleStructuredLogs: () => {} });
const bridges = [];

async function waitForwarded(b, source, n, timeoutMs = 120_000) {
  const key = `edgestream_bridge_forwarded_total{source="${source}"}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await b.metrics();
    if (m[key] >= n) return m;
    if (Date.now() > deadline) throw new Error(`only ${m[key]} of ${n} forwarded`);
    await sleep(20);
  }
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

try {
  const tenant = newTenant();
  const channels = Array.from({ length: CHANNELS }, (_, i) => channelOf(tenant, `m-${i}`));

  // 1. Streams: a backlog of EVENTS entries, then the bridge drains it.
  const writes = [];
  for (let n = 0; n < EVENTS; n++) {
    const channel = channels[n % CHANNELS];
    writes.push(redis.command('XADD', 'measure', '*', 'channel', channel, 'event', 'seq', 'data', JSON.stringify({ n, pad: 'x'.repeat(100) })));
  }
  await Promise.all(writes);
  let b = await startBridge({ valkeyUrl: valkey.url, edgeUrl: edge.url, args: ['--no-pubsub', '--stream', 'measure', ...EXTRA] });
  bridges.push(b);
  let t0 = performance.now();
  const cpu0 = cpuSeconds(b.proc.pid);
  await waitForwarded(b, 'streams', EVENTS);
  const streamsRate = EVENTS / ((performance.now() - t0) / 1000);
  const streamsCpu = cpuSeconds(b.proc.pid) - cpu0;
  const streamsRss = peakRssMiB(b.proc.pid);
  await b.stop();

  // 2. Pub/Sub: EVENTS messages published as fast as Valkey takes them.
  b = await startBridge({ valkeyUrl: valkey.url, edgeUrl: edge.url, args: EXTRA });
  bridges.push(b);
  while ((await redis.command('PUBSUB', 'NUMSUB', 'events_channel'))[1] < 1) await sleep(20);
  const pubs = [];
  t0 = performance.now();
  for (let n = 0; n < EVENTS; n++) {
    const channel = channels[n % CHANNELS];
    pubs.push(redis.command('PUBLISH', 'events_channel', JSON.stringify({ channel, event: 'seq', data: { n, pad: 'x'.repeat(100) } })));
  }
  await Promise.all(pubs);
  const m = await waitForwarded(b, 'pubsub', EVENTS);
  const pubsubRate = EVENTS / ((performance.now() - t0) / 1000);
  const dropped = Object.entries(m).filter(([k]) => k.startsWith('edgestream_bridge_dropped_total')).reduce((s, [, v]) => s + v, 0);
  const pubsubRss = peakRssMiB(b.proc.pid);

  await b.stop();

  // 3. The bridge's own ceiling: the same Streams backlog against a stub edge
  //    (a loopback HTTP server that answers 202 at once), so workerd is out
  //    of the way.
  let stubEvents = 0;
  const stub = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const { events } = JSON.parse(Buffer.concat(chunks));
      stubEvents += events.length;
      const results = events.map((e, i) => ({ channel: e.channel, id: i + 1, duplicate: false }));
      res.writeHead(202, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ results }));
    });
  });
  await new Promise((r) => stub.listen(0, '127.0.0.1', r));
  const stubUrl = `http://127.0.0.1:${stub.address().port}`;
  const STUB_EVENTS = EVENTS * 5;
  const more = [];
  for (let n = EVENTS; n < STUB_EVENTS; n++) {
    const channel = channels[n % CHANNELS];
    more.push(redis.command('XADD', 'measure', '*', 'channel', channel, 'event', 'seq', 'data', JSON.stringify({ n, pad: 'x'.repeat(100) })));
  }
  await Promise.all(more);
  await redis.command('XGROUP', 'DESTROY', 'measure', 'edgestream-bridge');
  b = await startBridge({ valkeyUrl: valkey.url, edgeUrl: stubUrl, args: ['--no-pubsub', '--stream', 'measure', ...EXTRA] });
  bridges.push(b);
  t0 = performance.now();
  const cpu1 = cpuSeconds(b.proc.pid);
  await waitForwarded(b, 'streams', STUB_EVENTS);
  const stubRate = STUB_EVENTS / ((performance.now() - t0) / 1000);
  const stubCpu = cpuSeconds(b.proc.pid) - cpu1;
  await b.stop();
  stub.close();

  // 4. Latency, origin to subscriber: the same SSE stream receives events
  //    published through the bridge (Pub/Sub) and directly over HTTP,
  //    interleaved, each stamped with its send time.
  b = await startBridge({ valkeyUrl: valkey.url, edgeUrl: edge.url, args: EXTRA });
  bridges.push(b);
  while ((await redis.command('PUBSUB', 'NUMSUB', 'events_channel'))[1] < 1) await sleep(20);
  const viaBridge = channelOf(tenant, 'lat-bridge');
  const direct = channelOf(tenant, 'lat-direct');
  const sub = subscribe(edge.url, [viaBridge, direct], { token: await subscriber(tenant), types: ['lat'] });
  await sub.opened();
  const latencies = { bridge: [], direct: [] };
  sub.es.addEventListener('lat', (e) => {
    const { path: p, t } = JSON.parse(e.data);
    latencies[p].push(performance.now() - t);
  });
  const token = await platformPublisher();
  // Warm up both paths.
  await publish(edge.url, token, { channel: direct, event: 'warm', data: 0 });
  await redis.command('PUBLISH', 'events_channel', JSON.stringify({ channel: viaBridge, event: 'warm', data: 0 }));
  await sleep(500);
  for (let i = 0; i < LATENCY_EVENTS; i++) {
    await redis.command('PUBLISH', 'events_channel', JSON.stringify({ channel: viaBridge, event: 'lat', data: { path: 'bridge', t: performance.now() } }));
    publish(edge.url, token, { channel: direct, event: 'lat', data: { path: 'direct', t: performance.now() } });
    await sleep(1000 / RATE);
  }
  await sub.until(() => latencies.bridge.length >= LATENCY_EVENTS && latencies.direct.length >= LATENCY_EVENTS, 30_000, 'latency events');
  sub.close();
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return { p50: quantile(s, 0.5), p99: quantile(s, 0.99) };
  };
  const lb = stats(latencies.bridge);
  const ld = stats(latencies.direct);
  const f = (x) => x.toFixed(1);
  console.log(`bridge binary: ${process.env.EDGESTREAM_BRIDGE_BIN ?? 'target/release/edgestream-bridge'}; flags: ${EXTRA.join(' ') || '(defaults)'}`);
  console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), everything on loopback`);
  console.log(`throughput Streams  (backlog of ${EVENTS} events, ${CHANNELS} channels): ${Math.round(streamsRate)} events/s; bridge CPU ${streamsCpu.toFixed(2)} s for ${EVENTS} events`);
  console.log(`throughput Streams to a stub edge (bridge alone, ${STUB_EVENTS} events): ${Math.round(stubRate)} events/s; bridge CPU ${stubCpu.toFixed(2)} s (received by the stub: ${stubEvents})`);
  console.log(`throughput Pub/Sub  (${EVENTS} events published at once, ${CHANNELS} channels): ${Math.round(pubsubRate)} events/s, dropped ${dropped}`);
  console.log(`peak RSS of the bridge: ${streamsRss.toFixed(1)} MiB draining the Streams backlog, ${pubsubRss.toFixed(1)} MiB through the Pub/Sub burst`);
  console.log(`latency origin -> SSE via bridge: p50 ${f(lb.p50)} ms, p99 ${f(lb.p99)} ms (${latencies.bridge.length} events at ${RATE}/s)`);
  console.log(`latency origin -> SSE direct HTTP: p50 ${f(ld.p50)} ms, p99 ${f(ld.p99)} ms`);
  console.log(`added by the bridge: p50 ${f(lb.p50 - ld.p50)} ms, p99 ${f(lb.p99 - ld.p99)} ms`);
} finally {
  for (const b of bridges) await b.stop('SIGKILL');
  redis.close();
  await edge.stop();
  await valkey.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
}
