// Serves the built worker (build/index.js + build/index_bg.wasm) in workerd
// through miniflare's API for the benchmark, on a fixed loopback port, until
// it is stopped with SIGTERM or SIGINT. The port is the worker's own socket,
// not miniflare's entry worker: that development proxy re-streams every
// response body (~7 µs per delivered event here), and production has no such
// layer.
//
//   node bench/serve-worker.mjs --port 8899 [--var NAME=VALUE]... [--probe-hibernation]
//                               [--profile-dir DIR] [--stats-port 8898]
//                               [--ratelimit NAME=LIMIT/PERIOD]...
//
// --ratelimit adds a rate-limiting binding (wrangler's `[[ratelimits]]`),
// e.g. PUBLISH_QUOTA=100/10 for the publish quota.
//
// The HS256 secret comes from BENCH_JWT_SECRET (the benchmark mints its tokens
// with it). With --probe-hibernation the Durable Object class is wrapped so
// that every construction logs `{"bench":"do-constructed",...}`: workerd
// constructs a channel object again only after it evicted (hibernated) it, so
// counting constructions shows when hibernation happened. The wrapper is a
// module added at run time; the bundle itself is not changed.
//
// With --stats-port, a second loopback socket answers
// `GET /channel-stats?channel=NAME` with the channel object's own stats, which
// count the SQLite rows it wrote (`rows_written`; the benchmark reports them
// per event). The public `GET /v1/channels/{channel}` leaves that count out;
// this reaches the object through miniflare's binding, as a test would, so
// the Worker exposes nothing for it.
//
// With --profile-dir, workerd's inspector is opened and V8's sampling CPU
// profiler runs between SIGUSR1 and SIGUSR2 (the benchmark sends them around
// its measured phase); each profile is written to DIR as a .cpuprofile (open
// it in Chrome DevTools) with a .summary.json of self time per function.
import { Miniflare } from 'miniflare';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
import path from 'node:path';
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import { createServer } from 'node:net';
import http from 'node:http';
import WebSocket from 'ws';
import { startWorker, ROOT } from '../tests/support/worker.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    var: { type: 'string', multiple: true, default: [] },
    'probe-hibernation': { type: 'boolean', default: false },
    'profile-dir': { type: 'string' },
    'stats-port': { type: 'string' },
    ratelimit: { type: 'string', multiple: true, default: [] },
  },
});
const ratelimits = {};
for (const spec of values.ratelimit) {
  const match = /^([A-Z_][A-Z0-9_]*)=(\d+)\/(10|60)$/.exec(spec);
  if (!match) throw new Error(`--ratelimit ${spec}: expected NAME=LIMIT/PERIOD with PERIOD 10 or 60`);
  ratelimits[match[1]] = { simple: { limit: Number(match[2]), period: Number(match[3]) } };
}
const vars = {};
for (const pair of values.var) {
  const at = pair.indexOf('=');
  if (at > 0) vars[pair.slice(0, at)] = pair.slice(at + 1);
}
if (process.env.BENCH_JWT_SECRET) vars.JWT_SECRET = process.env.BENCH_JWT_SECRET;
const port = Number(values.port);

const PROBE_ENTRY = `
import worker, * as bundle from './index.js';
export * from './index.js';
export default worker;
export class ChannelObject {
  constructor(state, env) {
    console.log(JSON.stringify({ bench: 'do-constructed', id: state.id.toString(), t: Date.now() }));
    return new bundle.ChannelObject(state, env);
  }
}
`;

/**
 * Like tests/support/worker.mjs's startWorker (same miniflare options), for
 * what it does not offer: the probe module as entry, and the inspector.
 */
async function startCustom({ probe, inspectorPort }) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'), undefined, {
    envFiles: ['.bench-reads-no-env-file'],
  });
  const build = path.join(ROOT, 'build');
  const code = probe
    ? {
        modulesRoot: build,
        modules: [
          { type: 'ESModule', path: path.join(build, 'bench-probe-entry.mjs'), contents: PROBE_ENTRY },
          { type: 'ESModule', path: path.join(build, 'index.js') },
          { type: 'CompiledWasm', path: path.join(build, 'index_bg.wasm') },
        ],
      }
    : { modules: true, scriptPath: path.join(build, 'index.js') };
  const mf = new Miniflare({
    host: '127.0.0.1',
    port: 0,
    cf: false,
    durableObjectsPersist: false,
    ...(inspectorPort ? { inspectorPort } : {}),
    workers: [
      {
        ...workerOptions,
        name: 'edgestream',
        rootPath: ROOT,
        ...code,
        ...(inspectorPort ? { unsafeInspectorProxy: true } : {}),
        bindings: { ...workerOptions.bindings, ...vars },
        ratelimits,
        unsafeDirectSockets: [{ host: '127.0.0.1', port }],
      },
    ],
  });
  await mf.ready;
  const url = await mf.unsafeGetDirectURL('edgestream');
  return { url: url.origin, mf, stop: () => mf.dispose() };
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** V8's CPU profiler over workerd's inspector, driven by SIGUSR1/SIGUSR2. */
async function attachProfiler(inspectorPort, dir) {
  fs.mkdirSync(dir, { recursive: true });
  // miniflare's inspector proxy connects to workerd only after the runtime
  // is up; a client that talks to it earlier crashes the proxy, so wait.
  let ws;
  for (let attempt = 0; ; attempt++) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      ws = new WebSocket(`ws://127.0.0.1:${inspectorPort}/edgestream`, { headers: { Origin: 'http://localhost' } });
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      break;
    } catch (e) {
      if (attempt >= 10) throw e;
    }
  }
  let nextId = 1;
  const pending = new Map();
  ws.on('message', (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 100 });
  let count = 0;
  profiler.start = () => call('Profiler.start');
  profiler.stop = async () => {
    const answer = await call('Profiler.stop');
    const profile = answer.result?.profile;
    if (!profile) return;
    const name = path.join(dir, `${process.env.BENCH_PROFILE_NAME || 'profile'}-${++count}`);
    fs.writeFileSync(`${name}.cpuprofile`, JSON.stringify(profile));
    fs.writeFileSync(`${name}.summary.json`, JSON.stringify(summarize(profile), null, 1));
  };
}

// Installed at once: node's default for SIGUSR2 is to exit.
const profiler = { start: () => {}, stop: async () => {} };
process.on('SIGUSR1', () => profiler.start());
process.on('SIGUSR2', () => profiler.stop());

/** Self time per function, and per kind of code (wasm, JS glue, runtime). */
function summarize(profile) {
  const interval = (profile.endTime - profile.startTime) / Math.max(1, profile.samples.length);
  const byFunction = new Map();
  const byKind = new Map();
  let total = 0;
  for (const node of profile.nodes) {
    const ms = (node.hitCount * interval) / 1000;
    if (!ms) continue;
    const f = node.callFrame;
    const url = f.url || '';
    const name = f.functionName || '(anonymous)';
    let kind;
    if (name === '(idle)') kind = 'idle';
    else if (name === '(garbage collector)') kind = 'garbage collector';
    else if (name === '(program)') kind = 'runtime (program)';
    else if (url.startsWith('wasm://') || name.startsWith('$') || name.includes('wasm-function')) kind = 'wasm (edgestream)';
    else if (url.endsWith('index.js') || url.includes('bench-probe')) kind = 'JS glue (wasm-bindgen, workers-rs shim)';
    else if (!url) kind = 'runtime built-ins (native)';
    else kind = `other JS (${url.split('/').pop()})`;
    const key = `${name} ${url.split('/').pop()}:${f.lineNumber}`;
    byFunction.set(key, (byFunction.get(key) || 0) + ms);
    byKind.set(kind, (byKind.get(kind) || 0) + ms);
    if (kind !== 'idle') total += ms;
  }
  const sorted = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    busy_ms: total,
    channel_object_ms: channelObjectMs(profile),
    wall_ms: (profile.endTime - profile.startTime) / 1000,
    by_kind: Object.fromEntries(sorted(byKind).map(([k, v]) => [k, Math.round(v * 10) / 10])),
    top_functions: sorted(byFunction).slice(0, 40).map(([k, v]) => [k, Math.round(v * 10) / 10]),
  };
}

// The channel object's own code: what stays serial per channel on
// Cloudflare, where the streams' Worker invocations run elsewhere.
const CHANNEL_OBJECT_CODE = /^edgestream::edge::(channel_object|channel_store|fanout)::/;

/**
 * CPU time of the samples with a frame of the channel object's code on their
 * stack (what it called, `WebSocket.send` included), in ms; null when the
 * module has no function names (scripts/build-worker strips them unless
 * EDGESTREAM_KEEP_NAMES=1).
 */
function channelObjectMs(profile) {
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children || []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const named = profile.nodes.some((node) => CHANNEL_OBJECT_CODE.test(node.callFrame.functionName));
  if (!named) return null;
  const inObject = new Map();
  const isInObject = (id) => {
    if (id === undefined) return false;
    if (!inObject.has(id)) {
      inObject.set(id, CHANNEL_OBJECT_CODE.test(byId.get(id).callFrame.functionName) || isInObject(parent.get(id)));
    }
    return inObject.get(id);
  };
  let us = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    if (isInObject(profile.samples[i])) us += profile.timeDeltas[i + 1] ?? 0;
  }
  return Math.round(us / 100) / 10;
}

/** The channel objects' own stats answers, on a loopback socket of their own. */
async function serveChannelStats(mf, statsPort) {
  const channels = await mf.getDurableObjectNamespace('CHANNELS', 'edgestream');
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://stats');
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    const name = url.searchParams.get('channel');
    if (url.pathname !== '/channel-stats' || !name) {
      res.writeHead(404).end();
      return;
    }
    try {
      const answer = await channels.get(channels.idFromName(name)).fetch('https://object/stats');
      res.writeHead(answer.status, { 'Content-Type': 'application/json' }).end(await answer.text());
    } catch (e) {
      res.writeHead(502, { 'Content-Type': 'text/plain' }).end(String(e));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(statsPort, '127.0.0.1', resolve);
  });
}

const started = performance.now();
let inspectorPort;
if (values['profile-dir']) inspectorPort = await freePort();
const probe = values['probe-hibernation'];
const worker = probe || inspectorPort ? await startCustom({ probe, inspectorPort }) : await startWorker({ vars, ratelimits, port, direct: true });
if (values['profile-dir']) await attachProfiler(inspectorPort, values['profile-dir']);
if (values['stats-port']) await serveChannelStats(worker.mf, Number(values['stats-port']));
console.log(JSON.stringify({ bench: 'ready', url: worker.url, ms: Math.round(performance.now() - started) }));

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await worker.stop();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
