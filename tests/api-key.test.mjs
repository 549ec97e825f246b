// `npm run api-key` for real: the script runs wrangler's KV commands (--run)
// into the storage of a local relay that runs as `npm start` runs it
// (`wrangler dev --persist-to`, with API_KEYS bound as docs/deploy.md says),
// and what it creates works there while what it deletes stops working,
// streams included. The commands it prints for a deployed Worker are checked
// for the flags that make wrangler write remotely.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, TEST_SECRET } from './support/worker.mjs';
import { freePort } from './support/valkey.mjs';
import { streamUrl } from './support/sse.mjs';
import { rawStream, assertProblem } from './support/http.mjs';
import { newTenant, channelOf } from './support/tokens.mjs';

const SCRIPT = path.join(ROOT, 'scripts/api-key.mjs');
const WRANGLER = path.join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function apiKey(...args) {
  const run = spawnSync(process.execPath, [SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** The key a successful create printed. */
function keyOf(out) {
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.match(/API key \(shown once\): (\S+)/)[1];
}

// wrangler dev's proxy closes a kept-alive connection that sits idle while a
// test runs the script, and a request sent on it just then fails; so no
// connection is kept.
const post = (base, route, key, body) =>
  fetch(new URL(route, base), {
    method: 'POST',
    headers: { Authorization: `Api-Key ${key}`, 'Content-Type': 'application/json', Connection: 'close' },
    body: JSON.stringify(body),
  });
const publishWith = (base, key, channel, data = { pct: 1 }) =>
  post(base, '/v1/publish', key, { channel, event: 'scan.progress', data });

describe('npm run api-key, printing', () => {
  test('without a place it prints the deployed command (--remote) and the local one in the state npm start uses', () => {
    const out = apiKey('--name', 'billing', '--tenant', newTenant(), '--scope', 'events:publish');
    keyOf(out);
    const puts = out.stdout.split('\n').filter((l) => l.includes('npx wrangler kv key put --binding API_KEYS'));
    assert.equal(puts.length, 2, out.stdout);
    assert.match(puts[0], / --remote$/);
    // scripts/dev runs `wrangler dev --persist-to <dir>`: the local command writes there.
    const devState = readFileSync(path.join(ROOT, 'scripts/dev'), 'utf8').match(/wrangler dev .*--persist-to (\S+)/)[1];
    assert.ok(puts[1].endsWith(` --local --persist-to ${devState}`), puts[1]);
  });

  test('--env names the deployed environment, remotely', () => {
    const out = apiKey('--name', 'bridge', '--platform', '--scope', 'events:publish', '--env', 'production');
    keyOf(out);
    const put = out.stdout.split('\n').find((l) => l.includes('kv key put'));
    assert.match(put, /'\{"name":"bridge","scope":"events:publish events:platform"\}' --remote --env production$/);
    assert.match(out.stdout, /delete --fingerprint [0-9a-f]{64} --env production/);
  });

  test('refuses a key with neither --tenant nor --platform, and creates nothing', () => {
    const out = apiKey('--name', 'orphan', '--scope', 'events:publish', '--local');
    assert.equal(out.status, 2);
    assert.match(out.stderr, /--tenant <uuid>.*--platform/);
    assert.doesNotMatch(out.stdout, /API key/);
  });

  test('refuses what the relay would refuse or ignore: both a tenant and the platform, a bad tenant, an unknown scope', () => {
    const tenant = newTenant();
    for (const args of [
      ['--tenant', tenant, '--platform'],
      ['--tenant', tenant, '--scope', 'events:publish events:platform'],
      ['--tenant', tenant.toUpperCase()],
      ['--tenant', tenant, '--scope', 'events:publsh'],
      ['--tenant', tenant, '--local', '--env', 'production'],
      ['--tenant', tenant, '--run'],
    ]) {
      const out = apiKey('--name', 'x', ...args);
      assert.equal(out.status, 2, `${args.join(' ')}: ${out.stdout}`);
      assert.match(out.stderr, /^api-key: /, args.join(' '));
      assert.doesNotMatch(out.stdout, /API key/, args.join(' '));
    }
  });
});

describe('npm run api-key --run against a local relay', () => {
  let dir;
  let state;
  let config;
  let base;
  let dev;
  let devLog = '';
  const where = () => ['--persist-to', state, '--config', config, '--run'];

  before(async () => {
    assert.ok(existsSync(path.join(ROOT, 'build/index.js')), 'the worker is built (scripts/build-worker)');
    dir = mkdtempSync(path.join(tmpdir(), 'edgestream-api-key-'));
    state = path.join(dir, 'state');
    config = path.join(dir, 'wrangler.toml');
    // The repository's configuration, which `npm start` runs: it binds
    // API_KEYS without an id, so the local namespace is the one the KV
    // commands of `--local` write to. The worker is already built, so no [build].
    const toml = readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8')
      .replace(/^main = .*$/m, `main = ${JSON.stringify(path.join(ROOT, 'build/index.js'))}`)
      .replace(/^\[build\]\n(?:[^[\n].*\n|\n)*/m, '');
    assert.doesNotMatch(toml, /^\[build\]/m);
    assert.match(toml, /^\[\[kv_namespaces\]\]\nbinding = "API_KEYS"\n/m, 'npm start binds API_KEYS');
    writeFileSync(config, toml);
    // wrangler dev reads the secrets next to the configuration. The key
    // check's interval is shortened where the relay has that setting (it
    // checks every 60 s otherwise; the test waits for either).
    writeFileSync(path.join(dir, '.dev.vars'), `JWT_SECRET=${TEST_SECRET}\nAPI_KEY_RECHECK_SECONDS=1\n`);

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // As scripts/dev starts it.
    dev = spawn(
      process.execPath,
      [WRANGLER, 'dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state, '--log-level', process.env.EDGESTREAM_TEST_LOGS ? 'debug' : 'warn'],
      {
        cwd: dir,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
      },
    );
    for (const s of [dev.stdout, dev.stderr]) s.on('data', (d) => (devLog += d));
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ok = await fetch(`${base}/healthz`, { headers: { Connection: 'close' } }).then(
        async (r) => (await r.text(), r.ok),
        () => false,
      );
      if (ok) break;
      if (dev.exitCode !== null || Date.now() > deadline) throw new Error(`wrangler dev did not start:\n${devLog}`);
      await sleep(250);
    }
  });

  after(async () => {
    if (dev && dev.exitCode === null) {
      const exited = new Promise((r) => dev.once('exit', r));
      process.kill(-dev.pid, 'SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (dev.exitCode === null) process.kill(-dev.pid, 'SIGKILL');
    }
    if (process.env.EDGESTREAM_TEST_LOGS) process.stdout.write(devLog);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a tenant key lands in the relay\'s own storage: it publishes, asks for tickets and opens streams', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const key = keyOf(apiKey('--name', 'billing', '--tenant', tenant, '--scope', 'events:publish', ...where()));

    const published = await publishWith(base, key, channel, { pct: 42 });
    assert.equal(published.status, 202, await published.clone().text());
    assert.equal((await published.json()).results[0].id, 1);
    const ticket = await post(base, '/v1/tickets', key, { channels: [channel] });
    assert.equal(ticket.status, 201, await ticket.clone().text());

    const stream = await rawStream(streamUrl(base, [channel]), { headers: { Authorization: `Api-Key ${key}` } });
    try {
      assert.equal(stream.res.status, 200);
      await stream.until((t) => t.includes('data: {"pct":42}'), 30_000, 'the published event');
    } finally {
      await stream.close();
    }
    // Its tenant only.
    await assertProblem(await publishWith(base, key, channelOf(newTenant())), 403, 'channel_forbidden');
  });

  test('a --platform key publishes to any tenant', async () => {
    const key = keyOf(apiKey('--name', 'bridge', '--platform', '--scope', 'events:publish', ...where()));
    for (const tenant of [newTenant(), newTenant()]) {
      const res = await publishWith(base, key, channelOf(tenant));
      assert.equal(res.status, 202, await res.text());
    }
  });

  test('a deleted key is refused at once, its open stream ends with revoked, and other keys go on', { timeout: 240_000 }, async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const doomed = keyOf(apiKey('--name', 'doomed', '--tenant', tenant, '--scope', 'events:publish', ...where()));
    const other = keyOf(apiKey('--name', 'other', '--tenant', tenant, '--scope', 'events:publish', ...where()));
    const stream = await rawStream(streamUrl(base, [channel]), { headers: { Authorization: `Api-Key ${doomed}` } });
    try {
      assert.equal(stream.res.status, 200);
      await stream.opened();

      const deleted = apiKey('delete', '--key', doomed, ...where());
      assert.equal(deleted.status, 0, deleted.stderr);
      assert.match(deleted.stdout, /kv key delete --binding API_KEYS [0-9a-f]{64} --local --persist-to /);

      await assertProblem(await publishWith(base, doomed, channel), 401, 'invalid_token', { error: 'invalid_token' });
      await assertProblem(await post(base, '/v1/tickets', doomed, { channels: [channel] }), 401, 'invalid_token', { error: 'invalid_token' });
      const res = await publishWith(base, other, channel, { pct: 7 });
      assert.equal(res.status, 202, await res.text());

      // The stream learns of it at its next key check (bounded wait, no
      // assumption about the interval beyond the documented 60 s).
      await stream.until((t) => /event: stream-error\ndata: \{"code":"revoked"/.test(t), 180_000, 'stream-error revoked');
      await stream.end(30_000);
    } finally {
      await stream.close();
    }
  });
});
