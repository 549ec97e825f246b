// Runs the built relay in workerd through miniflare, configured as the
// repository's wrangler.toml configures `wrangler dev` (worker/config.json
// is that configuration, written when the package was packed).
import { Miniflare } from 'miniflare';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { claimsFor, signHs256, MIN_SECRET_BYTES } from './token.js';

const WORKER = fileURLToPath(new URL('./worker/', import.meta.url));
const CONFIG = JSON.parse(readFileSync(path.join(WORKER, 'config.json'), 'utf8'));

/**
 * Starts the relay on loopback. Resolves once it answers, with its URL, the
 * JWT secret it verifies tokens with, a token minter for that secret, and
 * `stop()`.
 */
export async function start({ port = 0, host = '127.0.0.1', secret, vars = {}, persist, onLog } = {}) {
  const settings = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, String(v)]));
  const jwtSecret = secret ?? settings.JWT_SECRET ?? randomBytes(32).toString('hex');
  if (Buffer.byteLength(jwtSecret) < MIN_SECRET_BYTES) {
    throw new RangeError(`the JWT secret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  const bindings = { ...CONFIG.bindings, ...settings, JWT_SECRET: jwtSecret };
  const mf = new Miniflare({
    host,
    port,
    // The placeholder `request.cf`: fetching the real one needs the internet.
    cf: false,
    durableObjectsPersist: persist ? path.resolve(persist) : false,
    // The relay's own log lines (structured JSON); dropped unless asked for.
    // (miniflare refuses a handler that returns anything.)
    handleStructuredLogs: (line) => {
      onLog?.(line);
    },
    workers: [
      {
        ...CONFIG,
        name: 'edgestream',
        rootPath: WORKER,
        modules: true,
        scriptPath: path.join(WORKER, 'index.js'),
        bindings,
      },
    ],
  });
  let url;
  try {
    url = (await mf.ready).origin;
  } catch (e) {
    await mf.dispose().catch(() => {});
    throw e;
  }
  return {
    url,
    secret: jwtSecret,
    mintToken: (options) => signHs256(claimsFor(options, bindings), jwtSecret),
    stop: () => mf.dispose(),
  };
}
