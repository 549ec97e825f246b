// The typed client as the tests load it: client/dist, compiled from
// client/src by `npm run build:client` (which scripts/test runs first).
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './worker.mjs';

/**
 * Fails unless client/dist is built from the current client/src (scripts/test
 * runs `npm run build:client` first), so no test runs a stale client.
 */
export function assertClientBuilt() {
  const dist = path.join(ROOT, 'client/dist/index.js');
  if (!existsSync(dist)) throw new Error('client/dist is missing: run `npm run build:client`');
  if (statSync(path.join(ROOT, 'client/src/index.ts')).mtimeMs > statSync(dist).mtimeMs) {
    throw new Error('client/dist is older than client/src: run `npm run build:client`');
  }
  return dist;
}

/** The compiled client module's source, to serve to a page. */
export function clientModuleSource() {
  return readFileSync(assertClientBuilt(), 'utf8');
}
