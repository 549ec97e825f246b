// The packages as another project gets them: the client's tarball, the
// repository root as a git dependency installs it (packed, after its
// `prepare` builds the client), and the local relay package, all installed
// with npm into an empty project, type-checked from TypeScript and run.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { jwtVerify } from 'jose';
import { ROOT, startWorker, logCollector } from './support/worker.mjs';
import { subscriber, publisher, newTenant, channelOf, token } from './support/tokens.mjs';
import { publish, readRaw, streamUrl } from './support/sse.mjs';

const run = promisify(execFile);
const TSC = path.join(ROOT, 'node_modules/.bin/tsc');

/** Runs npm in `cwd`; returns its stdout. */
async function npm(args, cwd) {
  const { stdout } = await run('npm', args, { cwd, encoding: 'utf8', maxBuffer: 16 << 20 });
  return stdout;
}

/** `npm pack <dir>` into `out`; returns the tarball's path. */
async function pack(dir, out) {
  const [packed] = JSON.parse(await npm(['pack', dir, '--json', '--pack-destination', out], ROOT));
  return { file: path.join(out, packed.filename), files: packed.files.map((f) => f.path) };
}

// What an app writes: typed against the installed packages. Each
// `@ts-expect-error` must be an error, so types that silently became `any`
// fail the check.
const consumer = (specifier) => `import { EdgestreamClient, type StreamError } from '${specifier}';

type Events = { 'scan.progress': { pct: number } };

/** Reads \`count\` events from \`channel\`; resolves with their payloads and sequence numbers. */
export function consume(url: string, channel: string, token: string, count: number, onOpen: () => void) {
  return new Promise<Array<{ pct: number; seq: number | undefined }>>((resolve, reject) => {
    const seen: Array<{ pct: number; seq: number | undefined }> = [];
    const client = new EdgestreamClient<Events>({
      url,
      channels: [channel],
      getToken: () => token,
      onOpen,
      onError: (e: StreamError) => {
        if (e.fatal) reject(new Error(e.code));
      },
    });
    client.on('scan.progress', (data, event) => {
      seen.push({ pct: data.pct, seq: event.seq });
      if (seen.length === count) {
        client.close();
        resolve(seen);
      }
    });
    // @ts-expect-error not an event of the map
    client.on('scan.unknown', () => {});
    // @ts-expect-error the payload is { pct: number }
    client.on('scan.progress', (data) => data.findings);
  });
}
`;

const localConsumer = `import { start, type LocalRelay } from '@edgestream/local';

export async function relay(): Promise<LocalRelay> {
  const relay = await start({ vars: { RETRY_MS: 500, DEV_MODE: true } });
  const tenant: string = relay.mintToken({ tenant: 'x', publish: true });
  void tenant;
  // @ts-expect-error the port is a number
  void start({ port: '8787' });
  return relay;
}
`;

// A node script in the app: start the relay, stream through it with the client.
const localScript = `import { start } from '@edgestream/local';
import { EdgestreamClient } from '@edgestream/client';

const relay = await start();
const tenant = crypto.randomUUID();
const channel = \`scan-progress:\${tenant}:scan-1\`;
const subscriber = relay.mintToken({ tenant });
const publisher = relay.mintToken({ tenant, publish: true });
const platform = relay.mintToken({ platform: true, publish: true });
let missingTenant;
try {
  relay.mintToken({ publish: true });
} catch (e) {
  missingTenant = e.message;
}
const seen = [];
await new Promise((resolve, reject) => {
  const client = new EdgestreamClient({
    url: relay.url,
    channels: [channel],
    getToken: () => subscriber,
    onError: (e) => e.fatal && reject(new Error(e.code)),
    onOpen: async () => {
      for (const [credential, pct] of [[publisher, 1], [publisher, 2], [platform, 3]]) {
        const res = await fetch(relay.url + '/v1/publish', {
          method: 'POST',
          headers: { Authorization: 'Bearer ' + credential, 'Content-Type': 'application/json' },
          body: JSON.stringify({ channel, event: 'scan.progress', data: { pct } }),
        });
        if (res.status !== 202) reject(new Error('publish: ' + res.status + ' ' + (await res.text())));
      }
    },
  });
  client.on('scan.progress', (data, event) => {
    seen.push([data.pct, event.seq]);
    if (seen.length === 3) {
      client.close();
      resolve();
    }
  });
});
await relay.stop();
console.log(JSON.stringify({ url: relay.url, secret: relay.secret, subscriber, platform, seen, missingTenant }));
`;

describe('packages', () => {
  let tmp;
  let app;
  let worker;
  const packed = {};

  before(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'edgestream-packages-'));
    // A checkout without client/dist, as git has it: packing must build the
    // client (and leaves the working tree's client/dist, which other tests
    // read, alone). For the git-URL case npm clones the repository, runs
    // `prepare` and packs it; `npm pack` of the checkout does the last two.
    const checkout = path.join(tmp, 'checkout');
    for (const file of ['package.json', 'README.md', 'client/package.json', 'client/README.md', 'client/tsconfig.json', 'client/.npmignore', 'client/.gitignore', 'client/src']) {
      await cp(path.join(ROOT, file), path.join(checkout, file), { recursive: true });
    }
    await symlink(path.join(ROOT, 'node_modules'), path.join(checkout, 'node_modules'));
    packed.root = await pack(checkout, tmp);
    packed.client = await pack(path.join(checkout, 'client'), tmp);
    const { stdout } = await run('node', [path.join(ROOT, 'packages/local/pack.mjs'), '--out', tmp], { encoding: 'utf8' });
    packed.local = stdout.trim();
    app = path.join(tmp, 'app');
    await mkdir(app);
    await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // The registry is reachable; npm's cache already holds miniflare from the repository's own install.
    await npm(['install', packed.client.file, packed.root.file, packed.local, '--no-audit', '--no-fund', '--prefer-offline'], app);
    worker = await startWorker({ handleStructuredLogs: logCollector().handleStructuredLogs });
  });
  after(async () => {
    await worker?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('pack only what an installed package needs', () => {
    assert.ok(packed.client.files.includes('dist/index.js') && packed.client.files.includes('dist/index.d.ts'), packed.client.files);
    assert.ok(packed.client.files.every((f) => f.startsWith('dist/') || ['package.json', 'README.md'].includes(f)), packed.client.files);
    assert.ok(packed.root.files.includes('client/dist/index.d.ts'), 'the root package carries the built client');
    assert.ok(!packed.root.files.some((f) => /^(src|core|bridge|tests)\//.test(f)), packed.root.files);
  });

  it('type-checks an app against the installed client (tarball and git forms) and the local relay', async () => {
    await writeFile(path.join(app, 'tarball.ts'), consumer('@edgestream/client'));
    await writeFile(path.join(app, 'git.ts'), consumer('edgestream/client'));
    await writeFile(path.join(app, 'local.ts'), localConsumer);
    const tsconfig = {
      compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], types: [], outDir: 'out' },
      files: ['tarball.ts', 'git.ts', 'local.ts'],
    };
    await writeFile(path.join(app, 'tsconfig.json'), JSON.stringify(tsconfig));
    await run(TSC, ['-p', app]).catch((e) => assert.fail(`tsc: ${e.stdout}${e.stderr}`));
  });

  for (const form of ['tarball', 'git']) {
    it(`the installed client (${form} form) streams from the worker`, async () => {
      const { consume } = await import(pathToFileURL(path.join(app, 'out', `${form}.js`)));
      const tenant = newTenant();
      const channel = channelOf(tenant);
      const pub = await publisher(tenant);
      const events = await consume(worker.url, channel, await subscriber(tenant), 3, async () => {
        for (const pct of [10, 20, 30]) assert.equal((await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } })).status, 202);
      });
      assert.deepEqual(events, [{ pct: 10, seq: 1 }, { pct: 20, seq: 2 }, { pct: 30, seq: 3 }]);
    });
  }

  it('start() in an app script runs the relay, mints tokens it accepts, and a stream receives what is published', async () => {
    await writeFile(path.join(app, 'local.mjs'), localScript);
    const { stdout } = await run('node', ['local.mjs'], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1));
    assert.deepEqual(result.seen, [[1, 1], [2, 2], [3, 3]], 'tenant and platform publishes, each once, in order');
    assert.match(result.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(result.missingTenant, /platform/);
    assert.ok(Buffer.byteLength(result.secret) >= 32);
    // Independent of the minter: jose verifies what it signed.
    const key = new TextEncoder().encode(result.secret);
    const { payload } = await jwtVerify(result.subscriber, key, { algorithms: ['HS256'] });
    assert.equal(payload.token_type, 'access');
    assert.ok(payload.exp > Date.now() / 1000 && payload.tenant_id, JSON.stringify(payload));
    const { payload: platform } = await jwtVerify(result.platform, key, { algorithms: ['HS256'] });
    assert.equal(platform.tenant_id, undefined);
    assert.deepEqual(platform.scope.split(' ').sort(), ['events:platform', 'events:publish']);
  });

  it('npx edgestream-local serves the relay until it is stopped', async () => {
    const secret = 'a-secret-for-the-local-relay-0123456789';
    // Its own process group: npx does not pass signals on to the relay.
    const child = spawn('npx', ['edgestream-local', '--port', '0', '--secret', secret, '--quiet'], { cwd: app, detached: true });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
      const deadline = Date.now() + 30_000;
      while (!/edgestream-local: (http\S+)/.test(out)) {
        assert.ok(Date.now() < deadline, `no URL printed: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const url = out.match(/edgestream-local: (http\S+)/)[1];
      assert.doesNotMatch(out, /JWT_SECRET=/, 'a given secret is not printed');
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok' });
      // It verifies with the secret it was given: a token signed elsewhere (jose) opens a stream.
      const tenant = newTenant();
      const subscriberToken = await token({ tenant_id: tenant }, { secret });
      const { res, text } = await readRaw(streamUrl(url, [channelOf(tenant)]), {
        headers: { Authorization: `Bearer ${subscriberToken}` },
        done: (t) => t.includes('stream-open'),
      });
      assert.equal(res.status, 200);
      assert.match(text, /event: stream-open/);
      process.kill(-child.pid, 'SIGTERM');
      const { code, signal } = await exited;
      assert.ok(code === 0 || signal === 'SIGTERM', `npx ended with ${code ?? signal}: ${out}`);
      // The relay stops on the signal too, and leaves no process behind (workerd included).
      const gone = Date.now() + 10_000;
      while (groupAlive(child.pid)) {
        assert.ok(Date.now() < gone, 'processes of the relay are still running');
        await new Promise((r) => setTimeout(r, 50));
      }
      await assert.rejects(fetch(`${url}/healthz`), 'the port is closed');
    } finally {
      if (groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
    }
  });
});

/** Whether any process of the group led by `pid` is still running. */
function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}
