#!/usr/bin/env node
// Creates and deletes API keys. The relay stores no key, only its SHA-256
// fingerprint with its tenant and scopes, in the API_KEYS KV namespace; a
// new key is printed once (store it with the service that uses it).
//
// Prints the wrangler command that writes (or deletes) the record, or runs
// it with --run. The record goes where the command says: wrangler's KV
// commands write to local storage unless told --remote, so a deployed relay
// needs --remote (and --env for staging or production), and the local one
// needs the state directory `npm start` runs on.
//
//   npm run api-key -- --name billing --tenant <uuid> --scope events:publish [--days 90]
//   npm run api-key -- --name my-app-bridge --platform --scope events:publish
//   npm run api-key -- delete --key es_...        (or --fingerprint <hex>)
//
// with --local (the state of `npm start`), or --remote [--env staging|production],
// and --run to run the command instead of printing it.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// Where `npm start` (scripts/dev) keeps the local relay's storage.
const DEV_STATE = '.state/wrangler';
const SCOPES = ['events:publish', 'events:admin', 'events:platform'];
const PLATFORM = 'events:platform';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const USAGE = `usage:
  npm run api-key -- --name <name> (--tenant <uuid> | --platform) [--scope "events:publish ..."] [--days N] [where] [--run]
  npm run api-key -- delete (--key <key> | --fingerprint <hex>) [where] [--run]

where the record is written:
  --local                the local relay of \`npm start\` (its state in ${DEV_STATE})
  --persist-to <dir>     a local relay whose \`wrangler dev\` was given --persist-to <dir>
  --remote               the deployed Worker of the top level of wrangler.toml
  --env <name>           the deployed Worker of an environment (staging, production)
  --config <file>        a wrangler configuration other than wrangler.toml
  (none: both the deployed and the local command are printed; --run needs one)

scopes: ${SCOPES.join(', ')} (space-separated; --platform adds ${PLATFORM})`;

function fail(message) {
  console.error(`api-key: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      tenant: { type: 'string' },
      platform: { type: 'boolean', default: false },
      scope: { type: 'string', default: '' },
      days: { type: 'string' },
      key: { type: 'string' },
      fingerprint: { type: 'string' },
      local: { type: 'boolean', default: false },
      'persist-to': { type: 'string' },
      remote: { type: 'boolean', default: false },
      env: { type: 'string' },
      config: { type: 'string' },
      run: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
} catch (e) {
  fail(e.message);
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const command = positionals[0] ?? 'create';
if (positionals.length > 1 || !['create', 'delete'].includes(command)) {
  fail(`unknown command "${positionals.join(' ')}"`);
}

const targets = targetsFrom(values);
if (command === 'create') {
  create();
} else {
  remove();
}

/**
 * The wrangler flags of each place the command may write to: one when the
 * caller said where, otherwise the deployed and the local one.
 */
function targetsFrom(v) {
  const local = v.local || v['persist-to'] !== undefined;
  const remote = v.remote || v.env !== undefined;
  if (local && remote) fail('name one place: local (--local, --persist-to) or deployed (--remote, --env)');
  if (v.env !== undefined && !/^[A-Za-z0-9_-]+$/.test(v.env)) fail(`--env "${v.env}" is not an environment name`);
  const config = v.config === undefined ? [] : ['--config', v.config];
  const deployed = {
    label: v.env ? `the deployed Worker of --env ${v.env}` : 'the deployed Worker (add --env staging or --env production for an environment)',
    flags: ['--remote', ...(v.env ? ['--env', v.env] : []), ...config],
  };
  const onMachine = {
    label: v['persist-to'] ? `the local relay run with --persist-to ${v['persist-to']}` : `the local relay of \`npm start\` (${DEV_STATE})`,
    flags: ['--local', '--persist-to', v['persist-to'] ?? DEV_STATE, ...config],
  };
  if (local) return [onMachine];
  if (remote) return [deployed];
  if (v.run) fail('--run needs to know where: --local or --remote (with --env for an environment)');
  return [deployed, onMachine];
}

function create() {
  if (values.key !== undefined || values.fingerprint !== undefined) fail('--key and --fingerprint are for delete');
  if (!values.name) fail('--name is required: it names the key in logs and audits');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(values.name)) fail(`--name must be 1-64 of A-Z a-z 0-9 _ . -, got "${values.name}"`);
  const scopes = values.scope.split(/\s+/).filter(Boolean);
  const unknown = scopes.filter((s) => !SCOPES.includes(s));
  if (unknown.length) fail(`unknown scope ${unknown.map((s) => `"${s}"`).join(', ')}: the relay knows ${SCOPES.join(', ')}`);
  if (values.platform && !scopes.includes(PLATFORM)) scopes.push(PLATFORM);
  const platform = scopes.includes(PLATFORM);
  // A key without a tenant that is not explicitly a platform key would be
  // refused by the relay on every endpoint (403 tenant_missing): refuse it
  // here, when the mistake is cheap to fix.
  if (values.tenant === undefined && !platform) {
    fail('say whom the key acts for: --tenant <uuid> (one tenant) or --platform (every tenant, the events:platform scope)');
  }
  if (values.tenant !== undefined && platform) {
    fail('a key with a tenant acts for that tenant only: give --tenant or --platform (events:platform), not both');
  }
  if (values.tenant !== undefined && !UUID.test(values.tenant)) {
    fail(`--tenant must be a lowercase hyphenated UUID, got "${values.tenant}"`);
  }
  if (values.days !== undefined && !/^[1-9][0-9]{0,4}$/.test(values.days)) fail(`--days must be a whole number of days from 1, got "${values.days}"`);

  const key = `es_${randomBytes(32).toString('base64url')}`;
  const fingerprint = createHash('sha256').update(key).digest('hex');
  const record = { name: values.name, scope: scopes.join(' ') };
  if (values.tenant) record.tenant = values.tenant;
  if (values.days) record.expires_at = Math.floor(Date.now() / 1000) + Number(values.days) * 86400;

  // With --run the key is shown only once its record is stored: a key whose
  // store failed would be refused everywhere.
  if (!values.run) console.log(`API key (shown once): ${key}\n`);
  wrangler(['kv', 'key', 'put', '--binding', 'API_KEYS', fingerprint, JSON.stringify(record)], 'Store its fingerprint');
  if (values.run) console.log(`\nAPI key (shown once): ${key}\n`);
  console.log(`Use it as:  Authorization: Api-Key ${key}`);
  console.log(`Delete it:  npm run api-key -- delete --fingerprint ${fingerprint} ${whereFlags()}`);
}

function remove() {
  if (values.name !== undefined || values.tenant !== undefined || values.platform || values.scope || values.days !== undefined) {
    fail('delete takes --key or --fingerprint, and where');
  }
  if ((values.key === undefined) === (values.fingerprint === undefined)) fail('delete needs --key <key> or --fingerprint <hex>');
  const fingerprint = values.fingerprint ?? createHash('sha256').update(values.key).digest('hex');
  if (!/^[0-9a-f]{64}$/.test(fingerprint)) fail('--fingerprint must be 64 lowercase hex digits (the SHA-256 of the key)');
  wrangler(['kv', 'key', 'delete', '--binding', 'API_KEYS', fingerprint], 'Delete its record');
  console.log(
    'From then on the relay refuses the key for publishing, tickets and new streams (a deployed relay\n' +
      'within about a minute, as KV caches expire). Streams opened with it end at their next key check\n' +
      "(every 60 s by default); to end them at once, kick the key's subject, api-key:<name>\n" +
      '(POST /v1/admin/kick {"tenant": "<uuid>", "user": "api-key:<name>"}, docs/security.md).',
  );
}

/** Runs the command (--run) or prints it for each target. */
function wrangler(args, what) {
  if (values.run) {
    const [target] = targets;
    console.log(`${what} in ${target.label}:\n`);
    console.log(`  ${shell(['npx', 'wrangler', ...args, ...target.flags])}\n`);
    const bin = path.join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
    const run = spawnSync(process.execPath, [bin, ...args, ...target.flags], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { WRANGLER_SEND_METRICS: 'false', ...process.env },
    });
    if (run.status !== 0) {
      console.error(
        `api-key: wrangler failed (${run.error?.message ?? `exit ${run.status}`}); ` +
          'is API_KEYS bound in wrangler.toml (docs/deploy.md, "API keys")?',
      );
      process.exit(1);
    }
    return;
  }
  for (const [i, target] of targets.entries()) {
    console.log(`${i === 0 ? what : 'or'} in ${target.label}:\n`);
    console.log(`  ${shell(['npx', 'wrangler', ...args, ...target.flags])}\n`);
  }
}

/** The flags that name where, for the delete command printed after a create. */
function whereFlags() {
  if (targets.length > 1) return '--remote (or --local)';
  return shell(targets[0].flags.filter((f) => f !== '--remote' || !values.env));
}

/** Words quoted for a POSIX shell where they need it. */
function shell(words) {
  return words.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", "'\\''")}'`)).join(' ');
}
