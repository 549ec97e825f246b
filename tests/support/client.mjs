// The typed client as the tests load it: client/dist, compiled from
// client/src by `npm run build:client` (which scripts/test runs first).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './worker.mjs';

const SRC = path.join(ROOT, 'client/src');
const DIST = path.join(ROOT, 'client/dist');

/**
 * Fails unless client/dist is built from the current client/src (scripts/test
 * runs `npm run build:client` first), so no test runs a stale client.
 */
export function assertClientBuilt() {
  const entry = path.join(DIST, 'index.js');
  if (!existsSync(entry)) throw new Error('client/dist is missing: run `npm run build:client`');
  const built = Math.min(...readdirSync(DIST).filter((f) => f.endsWith('.js')).map((f) => statSync(path.join(DIST, f)).mtimeMs));
  const stale = readdirSync(SRC).filter((f) => statSync(path.join(SRC, f)).mtimeMs > built);
  if (stale.length) throw new Error(`client/dist is older than client/src (${stale.join(', ')}): run \`npm run build:client\``);
  return entry;
}

/** The URL path a page imports the client from (`${origin}${CLIENT_PATH}/index.js`). */
export const CLIENT_PATH = '/test-client';

/**
 * Serves client/dist to a page (or a whole browser context) under
 * CLIENT_PATH on every origin, as a static file server would, so that the
 * page imports the same modules as an app that installed the package.
 */
export async function routeClient(target) {
  assertClientBuilt();
  await target.route(`**${CLIENT_PATH}/*.js`, (route) => {
    const file = path.basename(new URL(route.request().url()).pathname);
    const full = path.join(DIST, file);
    if (!existsSync(full)) return route.fulfill({ status: 404, body: 'not found' });
    return route.fulfill({ status: 200, contentType: 'text/javascript', body: readFileSync(full, 'utf8') });
  });
}
