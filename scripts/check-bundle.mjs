#!/usr/bin/env node
// Checks the size of a deployable bundle written by
// `wrangler deploy --dry-run --outdir <dir>` against the Workers limits:
// the upload (every module, gzip-compressed) must fit the free plan's 3 MiB
// (the paid plan allows 10 MiB), and no module may pass 64 MiB uncompressed.
//
//   node scripts/check-bundle.mjs <outdir> [--limit-gzip-bytes N]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';

const MiB = 1024 * 1024;
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'limit-gzip-bytes': { type: 'string', default: String(3 * MiB) } },
});
const dir = positionals[0];
if (!dir) {
  console.error('usage: node scripts/check-bundle.mjs <outdir> [--limit-gzip-bytes N]');
  process.exit(2);
}
const limit = Number(values['limit-gzip-bytes']);

// The modules wrangler uploads: not its source map or the folder's README.
const modules = readdirSync(dir)
  .filter((name) => !name.endsWith('.map') && name !== 'README.md')
  .filter((name) => statSync(path.join(dir, name)).isFile());
if (!modules.some((name) => name.endsWith('.wasm')) || !modules.some((name) => /\.m?js$/.test(name))) {
  console.error(`check-bundle: ${dir} holds no JavaScript entry and WebAssembly module: ${modules.join(', ')}`);
  process.exit(1);
}

let raw = 0;
let gzip = 0;
const rows = [];
for (const name of modules) {
  const bytes = readFileSync(path.join(dir, name));
  const compressed = gzipSync(bytes).length;
  raw += bytes.length;
  gzip += compressed;
  rows.push(`  ${name.replace(/^[0-9a-f]{40}-/, '')}: ${kib(bytes.length)} (gzip ${kib(compressed)})`);
  if (bytes.length > 64 * MiB) {
    console.error(`check-bundle: ${name} is ${kib(bytes.length)}, over the 64 MiB limit per module`);
    process.exit(1);
  }
}
const verdict = gzip <= limit ? 'within' : 'OVER';
console.log(`bundle: ${kib(raw)}, gzip ${kib(gzip)}: ${verdict} the ${kib(limit)} limit (Workers free plan)`);
console.log(rows.join('\n'));
if (gzip > limit) process.exit(1);

function kib(n) {
  return `${(n / 1024).toFixed(1)} KiB`;
}
