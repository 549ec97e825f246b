// The Python package (python/) against the worker in workerd: its pytest
// suite runs with the relay's URL and credentials in the environment, once
// with SimpleJWT's default HS256 set-up and once (the Django helper's tests)
// with Prowler's RS256 one. API keys are provisioned as an operator would,
// with scripts/api-key.mjs; the RSA pair is made here, so the worker only
// ever holds the public key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startWorker, logCollector, ROOT, TEST_SECRET } from './support/worker.mjs';
import { newTenant } from './support/tokens.mjs';

const PYTHON = path.join(ROOT, '.tools/venv/bin/python');
const AUDIENCE = 'edgestream';

let worker;
const env = {};

async function provisionKey(kv, { name, tenant, scope, days }) {
  const args = [path.join(ROOT, 'scripts/api-key.mjs'), '--name', name, '--scope', scope];
  if (tenant) args.push('--tenant', tenant);
  if (days) args.push('--days', days);
  const out = execFileSync('node', args, { encoding: 'utf8' });
  const key = out.match(/API key \(shown once\): (\S+)/)[1];
  const [, fingerprint, record] = out.match(/kv key put --binding API_KEYS (\w+) '(.*)'/);
  await kv.put(fingerprint, record);
  return key;
}

/**
 * Stores a key record the script refuses to create (no tenant and no
 * events:platform), as a namespace edited by hand could hold it.
 */
async function storeRecord(kv, record) {
  const key = `es_${randomBytes(32).toString('base64url')}`;
  await kv.put(createHash('sha256').update(key).digest('hex'), JSON.stringify(record));
  return key;
}

before(async () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  worker = await startWorker({
    vars: { JWT_PUBLIC_KEY: publicKey, JWT_AUDIENCE: AUDIENCE },
    kvNamespaces: ['API_KEYS'],
    handleStructuredLogs: logCollector().handleStructuredLogs,
  });
  const kv = await worker.mf.getKVNamespace('API_KEYS');
  const tenant = newTenant();
  Object.assign(env, {
    EDGESTREAM_TEST_URL: worker.url,
    EDGESTREAM_TEST_TENANT: tenant,
    // With an expiry: the relay cannot yet issue a ticket to a key without
    // one (it answers 500 internal).
    EDGESTREAM_TEST_API_KEY: await provisionKey(kv, { name: 'py-tenant', tenant, scope: 'events:publish', days: '30' }),
    EDGESTREAM_TEST_PLATFORM_KEY: await provisionKey(kv, { name: 'py-platform', scope: 'events:publish events:platform' }),
    EDGESTREAM_TEST_NO_SCOPE_KEY: await provisionKey(kv, { name: 'py-no-scope', tenant, scope: '' }),
    EDGESTREAM_TEST_NO_TENANT_KEY: await storeRecord(kv, { name: 'py-no-tenant', scope: 'events:publish' }),
    EDGESTREAM_TEST_JWT_SECRET: TEST_SECRET,
    EDGESTREAM_TEST_AUDIENCE: AUDIENCE,
    EDGESTREAM_TEST_RSA_PRIVATE_KEY: privateKey,
    EDGESTREAM_TEST_RSA_PUBLIC_KEY: publicKey,
  });
});
after(() => worker?.stop());

/** Runs the venv's Python; resolves with the exit code and everything it printed. */
function python(args, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, {
      cwd: ROOT,
      env: { ...process.env, ...env, ...extraEnv, PYTHONDONTWRITEBYTECODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

async function pytest(args, extraEnv) {
  const { code, output } = await python(['-m', 'pytest', '-q', '-p', 'no:cacheprovider', ...args], extraEnv);
  const summary = output.trim().split('\n').at(-1);
  process.stdout.write(`pytest: ${summary}\n`);
  assert.equal(code, 0, output);
  assert.match(summary, /\d+ passed/);
  assert.doesNotMatch(summary, /skipped|xfail|deselected/, 'every test must run');
}

test('the package against the relay (pytest, SimpleJWT HS256)', () => pytest(['python/tests'], { EDGESTREAM_TEST_SIMPLE_JWT: 'hs256' }));

test("the Django helper with Prowler's SimpleJWT set-up (RS256, typ claim)", () =>
  pytest(['python/tests/test_django.py'], { EDGESTREAM_TEST_SIMPLE_JWT: 'rs256' }));

test('the package type-checks with mypy --strict and passes ruff', async () => {
  for (const args of [
    ['-m', 'mypy', '--config-file', 'python/pyproject.toml', '--cache-dir', path.join(tmpdir(), 'edgestream-mypy'), 'python/src'],
    ['-m', 'ruff', 'format', '--check', '--no-cache', 'python'],
    ['-m', 'ruff', 'check', '--no-cache', 'python'],
  ]) {
    const { code, output } = await python(args);
    assert.equal(code, 0, `${args.join(' ')}\n${output}`);
  }
});
