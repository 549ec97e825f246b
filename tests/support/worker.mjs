// Runs the built worker (build/index.js) in workerd through miniflare's API,
// configured from wrangler.toml exactly as `wrangler dev` and deploy read it,
// with test secrets and settings layered on top.
import { before, after } from 'node:test';
import { Miniflare } from 'miniflare';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TEST_SECRET = 'edgestream-test-secret-0123456789abcdef';
const NO_ENV_FILE = '.edgestream-tests-read-no-env-file';

/**
 * Starts the worker on a free loopback port.
 * @param {object} [options]
 * @param {Record<string,string>} [options.vars] extra or overriding vars
 * @param {string} [options.persistPath] keep Durable Object storage here across restarts
 * @param {number} [options.port] fixed port (0 picks a free one)
 * @param {string[]} [options.kvNamespaces] KV bindings to add (e.g. API_KEYS)
 * @param {Record<string,{simple:{limit:number,period:number}}>} [options.ratelimits]
 *   rate-limiting bindings to add (e.g. PUBLISH_QUOTA), as wrangler's `[[ratelimits]]`
 * @param {(log: {timestamp: number, level: string, message: string}) => void} [options.handleStructuredLogs]
 *   receives every line the worker logs (instead of miniflare printing it)
 */
/**
 * With `direct`, requests reach the worker on a socket of its own instead of
 * through miniflare's entry worker (a development proxy that re-streams every
 * response body, which production does not have); the benchmark uses it.
 */
/**
 * With `resettable`, the channel object class is wrapped (by a module added
 * at run time; the bundle is not changed) so that the handle's
 * `resetChannel(name)` can reset one channel's object as workerd does to an
 * object that broke or is moved: its memory and every socket attached to it
 * are gone, in-flight requests to it fail, and the next request builds it
 * again from storage. Each construction logs a line
 * `{"test":"channel-object-constructed"}`.
 */
/**
 * With `usage`, the `USAGE` Analytics Engine binding is a recorder (a module
 * added at run time, as miniflare's own local dataset is one that drops
 * every point) that checks each point as Analytics Engine would and logs it
 * as `{"test":"usage-data-point","point":{indexes,blobs,doubles}}`; read them
 * with `usagePoints(lines)`.
 */
export async function startWorker({ vars = {}, persistPath, port = 0, handleStructuredLogs, kvNamespaces, ratelimits, direct = false, resettable = false, usage = false } = {}) {
  // No env files: a developer's .dev.vars must not change what tests see.
  // (wrangler reads .dev.vars whenever `envFiles` is empty, so it is given one
  // file that does not exist instead.)
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'), undefined, {
    envFiles: [NO_ENV_FILE],
  });
  const mf = new Miniflare({
    host: '127.0.0.1',
    port: direct ? 0 : port,
    // The placeholder `request.cf`; fetching the real one needs the internet.
    cf: false,
    // Without a path, storage lives in memory and dies with the runtime.
    durableObjectsPersist: persistPath ?? false,
    ...(handleStructuredLogs ? { handleStructuredLogs } : {}),
    workers: [
      {
        ...workerOptions,
        name: 'edgestream',
        rootPath: ROOT,
        ...(resettable ? resettableModules() : { modules: true, scriptPath: path.join(ROOT, 'build/index.js') }),
        bindings: { ...workerOptions.bindings, JWT_SECRET: TEST_SECRET, ...vars },
        ...(kvNamespaces ? { kvNamespaces } : {}),
        ...(ratelimits ? { ratelimits } : {}),
        ...(direct ? { unsafeDirectSockets: [{ host: '127.0.0.1', port }] } : {}),
        ...(usage ? { wrappedBindings: { USAGE: { scriptName: USAGE_RECORDER } } } : {}),
      },
      ...(usage ? [{ name: USAGE_RECORDER, modules: true, script: USAGE_RECORDER_SCRIPT }] : []),
    ],
  });
  const earlier = new Set(runtimeProcesses());
  const url = direct ? (await mf.ready, await mf.unsafeGetDirectURL('edgestream')) : await mf.ready;
  // The runtime miniflare spawned for this worker (tests start one at a time).
  const runtime = runtimeProcesses().filter((pid) => !earlier.has(pid));
  return {
    url: url.origin,
    mf,
    async stop() {
      await mf.dispose();
    },
    /**
     * Resets the object of channel `name` (needs `resettable`): `now`, or
     * `after-publish`, when its next publish has been handled and before the
     * answer leaves the object (the events may be stored; the publisher is
     * told it failed); `refuse-subscribe` resets it now and has it refuse
     * every stream's attach until `admit`.
     */
    async resetChannel(name, when = 'now') {
      if (!resettable) throw new Error('resetChannel needs startWorker({ resettable: true })');
      const namespace = await mf.getDurableObjectNamespace('CHANNELS', 'edgestream');
      const res = await namespace.get(namespace.idFromName(name)).fetch('http://reset/', { headers: { [RESET_HEADER]: when } }).catch((e) => e);
      const resets = when === 'now' || when === 'refuse-subscribe';
      if (resets && !(res instanceof Error)) throw new Error(`the reset request was answered (${res.status}), so the object was not reset`);
      if (!resets && res.status !== 204) throw new Error(`the reset was not armed: ${res.status ?? res}`);
    },
    /**
     * SIGKILLs the workerd process, as a crash or a machine loss would: no
     * object finishes what it was doing, and every connection drops at once.
     * Storage keeps only what was committed. Then releases what miniflare
     * holds, so that a new worker can take the port.
     */
    async kill() {
      if (runtime.length !== 1) throw new Error(`expected one workerd process of this worker, found ${runtime.length}`);
      const [pid] = runtime;
      process.kill(pid, 'SIGKILL');
      const deadline = Date.now() + 10_000;
      while (fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readOr(`/proc/${pid}/status`))) {
        if (Date.now() > deadline) throw new Error(`workerd ${pid} outlived SIGKILL`);
        await new Promise((r) => setTimeout(r, 20));
      }
      await mf.dispose().catch(() => {});
    },
  };
}

const RESET_HEADER = 'x-edgestream-test-reset';

const USAGE_RECORDER = 'usage-recorder';
// Refuses what Analytics Engine refuses (one index of at most 96 bytes, at
// most 20 blobs of strings and 20 finite doubles, 16 KiB of blobs), so a
// point that production would drop fails here too.
const USAGE_RECORDER_SCRIPT = `
const bytes = (s) => new TextEncoder().encode(s).length;
export default function () {
  return {
    writeDataPoint(point) {
      const { indexes = [], blobs = [], doubles = [] } = point ?? {};
      if (indexes.length > 1 || indexes.some((i) => typeof i !== 'string' || bytes(i) > 96)) throw new TypeError('bad index');
      if (blobs.length > 20 || blobs.some((b) => typeof b !== 'string')) throw new TypeError('bad blobs');
      if (blobs.reduce((n, b) => n + bytes(b), 0) > 16384) throw new TypeError('blobs too large');
      if (doubles.length > 20 || doubles.some((d) => typeof d !== 'number' || !Number.isFinite(d))) throw new TypeError('bad doubles');
      console.log(JSON.stringify({ test: 'usage-data-point', point: { indexes, blobs, doubles } }));
    },
  };
}
`;

/** The usage points a `usage` worker recorded, from its collected log lines. */
export function usagePoints(lines) {
  return lines.flatMap((l) => {
    try {
      const line = JSON.parse(l.message);
      return line?.test === 'usage-data-point' ? [line.point] : [];
    } catch {
      return [];
    }
  });
}

const RESETTABLE_ENTRY = `
import worker, * as bundle from './index.js';
export * from './index.js';
export default worker;
const armed = new Set();
// Channels whose objects answer every subscribe 503, as an object that keeps
// failing does: module state, so it outlives the object's own resets.
const refusing = new Set();
export class ChannelObject {
  constructor(state, env) {
    console.log(JSON.stringify({ test: 'channel-object-constructed' }));
    const inner = new bundle.ChannelObject(state, env);
    const fetch = inner.fetch.bind(inner);
    const id = state.id.toString();
    inner.fetch = async (request) => {
      const when = request.headers.get('${RESET_HEADER}');
      if (when === 'refuse-subscribe') {
        refusing.add(id);
        state.abort('reset by a fault test, refusing streams from now on');
      }
      if (when === 'admit') {
        refusing.delete(id);
        return new Response(null, { status: 204 });
      }
      // Every way a stream attaches: its own socket, or its isolate's hub.
      if (refusing.has(id) && ['/subscribe', '/hub', '/hub/join'].includes(new URL(request.url).pathname)) {
        return new Response(null, { status: 503 });
      }
      if (when === 'now') state.abort('reset by a fault test');
      if (when === 'after-publish') {
        armed.add(id);
        return new Response(null, { status: 204 });
      }
      const response = await fetch(request);
      if (new URL(request.url).pathname === '/publish' && armed.delete(id)) state.abort('reset by a fault test during a publish');
      return response;
    };
    return inner;
  }
}
`;

function resettableModules() {
  const build = path.join(ROOT, 'build');
  return {
    modulesRoot: build,
    modules: [
      { type: 'ESModule', path: path.join(build, 'test-resettable-entry.mjs'), contents: RESETTABLE_ENTRY },
      { type: 'ESModule', path: path.join(build, 'index.js') },
      { type: 'CompiledWasm', path: path.join(build, 'index_bg.wasm') },
    ],
  };
}

const readOr = (file) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

/** The pids of workerd processes that are children of this process. */
function runtimeProcesses() {
  const pids = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const stat = readOr(`/proc/${pid}/stat`);
    const close = stat.lastIndexOf(')');
    if (close < 0 || stat.slice(stat.indexOf('(') + 1, close) !== 'workerd') continue;
    if (Number(stat.slice(close + 2).split(' ')[1]) === process.pid) pids.push(Number(pid));
  }
  return pids;
}

/**
 * Collects the worker's log lines in memory instead of printing them, so
 * test output stays readable; set EDGESTREAM_TEST_LOGS=1 to print them too.
 * Pass `handleStructuredLogs` to `startWorker`; read `lines`.
 */
export function logCollector() {
  const lines = [];
  const print = Boolean(process.env.EDGESTREAM_TEST_LOGS);
  return {
    lines,
    handleStructuredLogs(log) {
      lines.push(log);
      if (print) process.stdout.write(`[worker ${log.level}] ${log.message}\n`);
    },
  };
}

/**
 * Starts a worker before the enclosing suite's tests and stops it after them.
 * Returns a handle that has `url`, `mf` and `stop` once the suite runs.
 */
export function useWorker(options) {
  const handle = {};
  before(async () => {
    Object.assign(handle, await startWorker(options));
  });
  after(() => handle.stop?.());
  return handle;
}
