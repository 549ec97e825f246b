// Runs the built worker (build/index.js) in workerd through miniflare's API,
// configured from wrangler.toml exactly as `wrangler dev` and deploy read it,
// with test secrets and settings layered on top.
import { before, after } from 'node:test';
import { Miniflare } from 'miniflare';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

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
 * @param {(log: {timestamp: number, level: string, message: string}) => void} [options.handleStructuredLogs]
 *   receives every line the worker logs (instead of miniflare printing it)
 */
/**
 * With `direct`, requests reach the worker on a socket of its own instead of
 * through miniflare's entry worker (a development proxy that re-streams every
 * response body, which production does not have); the benchmark uses it.
 */
export async function startWorker({ vars = {}, persistPath, port = 0, handleStructuredLogs, kvNamespaces, direct = false } = {}) {
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
        modules: true,
        scriptPath: path.join(ROOT, 'build/index.js'),
        bindings: { ...workerOptions.bindings, JWT_SECRET: TEST_SECRET, ...vars },
        ...(kvNamespaces ? { kvNamespaces } : {}),
        ...(direct ? { unsafeDirectSockets: [{ host: '127.0.0.1', port }] } : {}),
      },
    ],
  });
  const url = direct ? (await mf.ready, await mf.unsafeGetDirectURL('edgestream')) : await mf.ready;
  return {
    url: url.origin,
    mf,
    async stop() {
      await mf.dispose();
    },
  };
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
