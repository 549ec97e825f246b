// Packs @edgestream/local: the worker as scripts/build-worker left it in
// build/, and the miniflare options that wrangler reads from wrangler.toml,
// so the package runs the relay exactly as `npm start` does, without Rust or
// wrangler. `npm run pack:local` builds the worker first.
//
//   node packages/local/pack.mjs [--out <dir>]    (default packages/dist)
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BUILD = path.join(ROOT, 'build');
const WORKER = path.join(HERE, 'worker');
const BUNDLE = ['index.js', 'index_bg.wasm'];

const { out = path.join(ROOT, 'packages/dist') } = parseArgs({ options: { out: { type: 'string' } } }).values;

function fail(message) {
  process.stderr.write(`pack-local: ${message}\n`);
  process.exit(1);
}

for (const file of BUNDLE) {
  if (!existsSync(path.join(BUILD, file))) fail(`build/${file} is missing: run \`npm run build\` (or \`npm run pack:local\`)`);
}

// The package must run what the repository runs: same version, same miniflare.
const rootPackage = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const localPackage = JSON.parse(readFileSync(path.join(HERE, 'package.json'), 'utf8'));
if (localPackage.version !== rootPackage.version) {
  fail(`packages/local/package.json is version ${localPackage.version}, the repository ${rootPackage.version}`);
}
if (localPackage.dependencies.miniflare !== rootPackage.devDependencies.miniflare) {
  fail(`packages/local pins miniflare ${localPackage.dependencies.miniflare}, the repository uses ${rootPackage.devDependencies.miniflare}`);
}

// No env file: a developer's .dev.vars (their JWT_SECRET) must never be packed.
const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'), undefined, {
  envFiles: ['.edgestream-pack-reads-no-env-file'],
});
const config = prune(workerOptions);
if ('JWT_SECRET' in (config.bindings ?? {})) fail('wrangler.toml sets JWT_SECRET: a secret must not be packed');

rmSync(WORKER, { recursive: true, force: true });
mkdirSync(WORKER, { recursive: true });
for (const file of BUNDLE) copyFileSync(path.join(BUILD, file), path.join(WORKER, file));
writeFileSync(path.join(WORKER, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);

mkdirSync(out, { recursive: true });
const [packed] = JSON.parse(
  execFileSync('npm', ['pack', HERE, '--json', '--pack-destination', out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }),
);
process.stdout.write(`${path.join(out, packed.filename)}\n`);

/**
 * The options as JSON, without wrangler's empty defaults. Anything JSON
 * cannot carry (a function, a RegExp) would be lost in the package, so it
 * stops the pack instead.
 */
function prune(value, at = 'workerOptions') {
  if (Array.isArray(value)) return value.map((v, i) => prune(v, `${at}[${i}]`));
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return value;
  if (Object.getPrototypeOf(value) !== Object.prototype) fail(`${at} cannot be written as JSON`);
  const kept = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const pruned = prune(v, `${at}.${key}`);
    const empty = typeof pruned === 'object' && pruned !== null && Object.keys(pruned).length === 0;
    if (!empty) kept[key] = pruned;
  }
  return kept;
}
