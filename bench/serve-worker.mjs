// Serves the built worker (build/index.js + build/index_bg.wasm) in workerd
// through miniflare's API for the benchmark, on a fixed loopback port, until
// it is stopped with SIGTERM or SIGINT.
//
//   node bench/serve-worker.mjs --port 8899 [--var NAME=VALUE]... [--probe-hibernation]
//
// The HS256 secret comes from BENCH_JWT_SECRET (the benchmark mints its tokens
// with it). With --probe-hibernation the Durable Object class is wrapped so
// that every construction logs `{"bench":"do-constructed",...}`: workerd
// constructs a channel object again only after it evicted (hibernated) it, so
// counting constructions shows when hibernation happened. The wrapper is a
// module added at run time; the bundle itself is not changed.
import { Miniflare } from 'miniflare';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startWorker, ROOT } from '../tests/support/worker.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    var: { type: 'string', multiple: true, default: [] },
    'probe-hibernation': { type: 'boolean', default: false },
  },
});
const vars = {};
for (const pair of values.var) {
  const at = pair.indexOf('=');
  if (at > 0) vars[pair.slice(0, at)] = pair.slice(at + 1);
}
if (process.env.BENCH_JWT_SECRET) vars.JWT_SECRET = process.env.BENCH_JWT_SECRET;
const port = Number(values.port);

const PROBE_ENTRY = `
import worker, * as bundle from './index.js';
export default worker;
export class ChannelObject {
  constructor(state, env) {
    console.log(JSON.stringify({ bench: 'do-constructed', id: state.id.toString(), t: Date.now() }));
    return new bundle.ChannelObject(state, env);
  }
}
`;

/** Like tests/support/worker.mjs's startWorker, with the probe module as entry. */
async function startProbe() {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'), undefined, {
    envFiles: ['.bench-reads-no-env-file'],
  });
  const build = path.join(ROOT, 'build');
  const mf = new Miniflare({
    host: '127.0.0.1',
    port,
    cf: false,
    durableObjectsPersist: false,
    workers: [
      {
        ...workerOptions,
        name: 'edgestream',
        rootPath: ROOT,
        modulesRoot: build,
        modules: [
          { type: 'ESModule', path: path.join(build, 'bench-probe-entry.mjs'), contents: PROBE_ENTRY },
          { type: 'ESModule', path: path.join(build, 'index.js') },
          { type: 'CompiledWasm', path: path.join(build, 'index_bg.wasm') },
        ],
        bindings: { ...workerOptions.bindings, ...vars },
      },
    ],
  });
  const url = await mf.ready;
  return { url: url.origin, stop: () => mf.dispose() };
}

const started = performance.now();
const worker = values['probe-hibernation'] ? await startProbe() : await startWorker({ vars, port });
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
