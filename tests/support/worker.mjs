// Runs the built worker (build/index.js) in workerd through miniflare's API,
// configured from wrangler.toml exactly as `wrangler dev` and deploy read it,
// with test secrets and settings layered on top.
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TEST_SECRET = 'edgestream-test-secret-0123456789abcdef';

/**
 * Starts the worker on a free loopback port.
 * @param {object} [options]
 * @param {Record<string,string>} [options.vars] extra or overriding vars
 * @param {string} [options.persistPath] keep Durable Object storage here across restarts
 * @param {number} [options.port] fixed port (0 picks a free one)
 */
export async function startWorker({ vars = {}, persistPath, port = 0 } = {}) {
  // No env files: a developer's .dev.vars must not change what tests see.
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'), undefined, {
    envFiles: [],
  });
  // The bundle's two modules are named explicitly (miniflare 5 cannot take
  // wrangler's glob module rules).
  delete workerOptions.modulesRules;
  // wrangler describes the worker in miniflare 4's option shape; miniflare 5
  // converts it.
  const mf = new Miniflare(convertV4MiniflareOptions({
    host: '127.0.0.1',
    port,
    resourcePersistencePath: persistPath,
    workers: [
      {
        ...workerOptions,
        name: 'edgestream',
        rootPath: ROOT,
        modulesRoot: path.join(ROOT, 'build'),
        modules: [
          { type: 'ESModule', path: path.join(ROOT, 'build/index.js') },
          { type: 'CompiledWasm', path: path.join(ROOT, 'build/index_bg.wasm') },
        ],
        bindings: { ...workerOptions.bindings, JWT_SECRET: TEST_SECRET, ...vars },
      },
    ],
  }));
  const url = await mf.ready;
  return {
    url: url.origin,
    mf,
    async stop() {
      await mf.dispose();
    },
  };
}
