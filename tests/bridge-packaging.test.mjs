// The bridge's production packaging: the static binary (bridge/build-static)
// is static and works end to end, reading its API key from a file as under
// systemd's LoadCredential; the Dockerfile copies that binary and its health
// check runs the probe that answers; the systemd unit passes systemd's own
// checks; the Kubernetes manifest probes the path the bridge serves; and the
// deployment guide shows these files as they are. The image is built only
// where a container engine runs, and the test says why when it is not.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { startWorker, logCollector, ROOT } from './support/worker.mjs';
import { subscriber, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe } from './support/sse.mjs';
import { startValkey } from './support/valkey.mjs';
import { startBridge, STATIC_BIN, waitFor } from './support/bridge.mjs';

const run = promisify(execFile);
const DOCKERFILE = path.join(ROOT, 'bridge/Dockerfile');
const UNIT = path.join(ROOT, 'bridge/deploy/edgestream-bridge.service');
const MANIFEST = path.join(ROOT, 'bridge/deploy/kubernetes.yaml');
const ENV_EXAMPLE = path.join(ROOT, 'bridge/deploy/bridge.env.example');
const DEPLOY_DOC = path.join(ROOT, 'docs/deploy.md');
const IMAGE_BIN = '/usr/local/bin/edgestream-bridge';

let tmp;
let help;

before(async () => {
  assert.ok(fs.existsSync(STATIC_BIN), `${STATIC_BIN} is missing: run bash bridge/build-static`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgestream-bridge-pkg-'));
  help = (await run(STATIC_BIN, ['--help'], { env: { PATH: process.env.PATH } })).stdout;
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Whether an ELF file asks for a dynamic loader (a PT_INTERP program header). */
function needsLoader(file) {
  const elf = fs.readFileSync(file);
  assert.equal(elf.toString('latin1', 0, 4), '\x7fELF', 'an ELF file');
  assert.equal(elf[4], 2, '64-bit');
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true;
  }
  return false;
}

/** The variables the bridge reads: every `[env: NAME]` of its --help. */
const knownVariables = () => new Set([...help.matchAll(/\[env: ([A-Z_]+)[=\]]/g)].map((m) => m[1]));

/** Whether a .dockerignore pattern (`*` within one path segment) matches `file`. */
const globMatches = (pattern, file) =>
  new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`).test(file);

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerInstructions(text) {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

test('the static binary needs no loader and publishes end to end, its API key read from a file', async () => {
  assert.equal(needsLoader(STATIC_BIN), false, `${STATIC_BIN} is static`);
  assert.equal(needsLoader(process.execPath), true, 'the check sees a dynamic binary as one');
  const worker = await startWorker({ kvNamespaces: ['API_KEYS'], handleStructuredLogs: logCollector().handleStructuredLogs });
  const valkey = await startValkey({ dir: path.join(tmp, 'valkey') });
  const redis = await valkey.client();
  const key = `es_${createHash('sha256').update(tmp).digest('base64url')}`;
  const kv = await worker.mf.getKVNamespace('API_KEYS');
  await kv.put(createHash('sha256').update(key).digest('hex'), JSON.stringify({ name: 'static', scope: 'events:publish events:platform' }));
  const keyFile = path.join(tmp, 'publish-api-key');
  fs.writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  const tenant = newTenant();
  const channel = channelOf(tenant);
  const sub = subscribe(worker.url, [channel], { token: await subscriber(tenant), types: ['pkg.test'] });
  const b = await startBridge({ bin: STATIC_BIN, valkeyUrl: valkey.url, edgeUrl: worker.url, credential: { PUBLISH_API_KEY_FILE: keyFile } });
  try {
    await sub.opened();
    await waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'events_channel'))[1] === 1, 10_000, 'the subscription');
    await redis.command('PUBLISH', 'events_channel', JSON.stringify({ channel, event: 'pkg.test', data: { static: true } }));
    await sub.waitForData(1, 10_000);
    assert.equal(sub.data()[0].data, '{"static":true}');
    assert.deepEqual(await b.stop(), { code: 0, signal: null });
  } finally {
    sub.close();
    await b.stop('SIGKILL');
    redis.close();
    await valkey.stop();
    await worker.stop();
  }
});

test('Dockerfile: distroless, the static binary, a non-root user, a health check the binary answers', async (t) => {
  const steps = dockerInstructions(fs.readFileSync(DOCKERFILE, 'utf8'));
  const one = (op) => {
    const found = steps.filter((s) => s.op === op);
    assert.equal(found.length, 1, `one ${op}`);
    return found[0].args;
  };
  assert.match(one('FROM'), /^gcr\.io\/distroless\/static-debian\d+:nonroot$/, 'a static base with CA roots and no shell');
  const target = one('ARG').match(/^TARGET=(\S+)$/)[1];
  const [source, destination] = one('COPY').replace('${TARGET}', target).split(/\s+/);
  assert.equal(path.join(ROOT, source), STATIC_BIN, 'the image copies the binary bridge/build-static builds');
  assert.equal(destination, IMAGE_BIN);
  const ignore = fs.readFileSync(`${DOCKERFILE}.dockerignore`, 'utf8');
  assert.match(ignore, /^\*$/m, 'the build context is the binary only');
  assert.ok(ignore.split('\n').some((l) => l.startsWith('!') && globMatches(l.slice(1), source)), '…which the ignore file lets in');
  const user = one('USER');
  assert.match(user, /^\d+:\d+$/, 'numeric, so runAsNonRoot can check it');
  assert.notEqual(user.split(':')[0], '0');
  const env = Object.fromEntries([one('ENV').split('=')]);
  for (const name of Object.keys(env)) assert.ok(knownVariables().has(name), `the bridge reads ${name}`);
  const port = env.BRIDGE_METRICS_ADDR.split(':').pop();
  assert.equal(one('EXPOSE'), port);
  assert.deepEqual(JSON.parse(one('ENTRYPOINT')), [IMAGE_BIN]);
  const check = JSON.parse(one('HEALTHCHECK').match(/CMD (\[.*\])$/)[1]);
  assert.equal(check[0], IMAGE_BIN);

  // The health check as the container runs it: a bridge bound to every
  // interface, the probe with the same variable reaching it over loopback;
  // and failing when no bridge answers.
  const valkey = await startValkey({ dir: path.join(tmp, 'valkey-probe') });
  const b = await startBridge({ bin: STATIC_BIN, valkeyUrl: valkey.url, edgeUrl: 'http://127.0.0.1:9', metricsHost: '0.0.0.0' });
  const metricsAddr = `0.0.0.0:${b.metricsPort}`;
  const probe = () => run(STATIC_BIN, check.slice(1), { env: { PATH: process.env.PATH, BRIDGE_METRICS_ADDR: metricsAddr } }).then(() => 0, (e) => e.code);
  try {
    assert.equal(await probe(), 0, 'healthy while the bridge runs');
    await b.stop();
    assert.equal(await probe(), 1, 'unhealthy without it');
  } finally {
    await b.stop('SIGKILL');
    await valkey.stop();
  }

  const engine = await run('docker', ['info', '--format', '{{.ServerVersion}}']).then(
    (r) => ({ ok: true, version: r.stdout.trim() }),
    (e) => ({ ok: false, why: (e.stderr || e.message).trim().split('\n')[0] }),
  );
  if (!engine.ok) {
    t.diagnostic(`the image was not built: no container engine runs here (docker info: ${engine.why}); its static parts were checked`);
    return;
  }
  const tag = `edgestream-bridge-test:${process.pid}`;
  await run('docker', ['build', '-q', '-f', DOCKERFILE, '-t', tag, ROOT], { maxBuffer: 10 * 1024 * 1024 });
  try {
    const { stdout } = await run('docker', ['run', '--rm', tag, '--version']);
    assert.match(stdout, /^edgestream-bridge \d+\.\d+\.\d+/);
    t.diagnostic(`built and ran ${tag} with docker ${engine.version}`);
  } finally {
    await run('docker', ['rmi', '-f', tag]).catch(() => {});
  }
});

test('systemd unit: hardened, restarts with backoff, the credential loaded, and systemd accepts it', async (t) => {
  const text = fs.readFileSync(UNIT, 'utf8');
  const directives = new Map();
  for (const line of text.split('\n')) {
    const m = line.match(/^([A-Za-z]+)=(.*)$/);
    if (m) directives.set(m[1], [...(directives.get(m[1]) ?? []), m[2]]);
  }
  const value = (k) => directives.get(k)?.at(-1);
  assert.equal(value('ExecStart'), IMAGE_BIN);
  assert.equal(value('DynamicUser'), 'yes');
  assert.equal(value('NoNewPrivileges'), 'yes');
  assert.equal(value('CapabilityBoundingSet'), '', 'no capabilities');
  assert.equal(value('ProtectSystem'), 'strict');
  assert.equal(value('Restart'), 'always');
  assert.ok(value('RestartSec') && value('RestartSteps') && value('RestartMaxDelaySec'), 'a growing delay between restarts');
  assert.equal(value('StartLimitIntervalSec'), '0', 'never gives up restarting');
  const [name, source] = value('LoadCredential').split(':');
  assert.ok(source.startsWith('/etc/'));
  assert.equal(value('Environment'), `PUBLISH_API_KEY_FILE=%d/${name}`, 'the bridge reads the key from the credentials directory');
  assert.ok(value('EnvironmentFile'));
  assert.ok(parseInt(value('TimeoutStopSec'), 10) > 10, 'longer than the default shutdown timeout');
  const example = fs.readFileSync(ENV_EXAMPLE, 'utf8');
  for (const m of example.matchAll(/^#?\s*([A-Z_]+)=/gm)) assert.ok(knownVariables().has(m[1]), `the bridge reads ${m[1]}`);
  assert.ok(knownVariables().has('PUBLISH_API_KEY_FILE'));

  const analyze = await run('systemd-analyze', ['--version']).then((r) => r.stdout, () => null);
  if (!analyze) {
    t.diagnostic('systemd-analyze is not installed here: the unit was checked statically only');
    return;
  }
  const systemdVersion = Number(analyze.match(/systemd (\d+)/)[1]);
  // systemd checks that ExecStart exists: point it at the built binary.
  const unit = path.join(tmp, 'edgestream-bridge.service');
  fs.writeFileSync(unit, text.replace(`ExecStart=${IMAGE_BIN}`, `ExecStart=${STATIC_BIN}`));
  const verify = await run('systemd-analyze', ['verify', unit]).then((r) => ({ code: 0, out: r.stdout + r.stderr }), (e) => ({ code: e.code, out: e.stdout + e.stderr }));
  const complaints = verify.out.split('\n').filter((l) => l.trim())
    .filter((l) => !(systemdVersion < 254 && /Unknown key '(RestartSteps|RestartMaxDelaySec)'/.test(l)));
  assert.equal(verify.code, 0, verify.out);
  assert.deepEqual(complaints, [], 'systemd-analyze verify has nothing to say');
  const security = await run('systemd-analyze', ['security', '--offline=yes', unit]).then((r) => r.stdout, (e) => e.stdout);
  const exposure = Number(security.match(/Overall exposure level for .*: ([\d.]+)/)[1]);
  t.diagnostic(`systemd ${systemdVersion}: systemd-analyze security rates the unit's exposure ${exposure} (0 is best, 10 worst)`);
  assert.ok(exposure <= 2, `exposure ${exposure}`);
});

test('Kubernetes: one bridge, its credential from a Secret, probes on the path the bridge serves, bounded resources', () => {
  const docs = YAML.parseAllDocuments(fs.readFileSync(MANIFEST, 'utf8')).map((d) => d.toJSON());
  const secret = docs.find((d) => d.kind === 'Secret');
  const deployment = docs.find((d) => d.kind === 'Deployment');
  assert.ok(secret && deployment);
  assert.equal(deployment.spec.replicas, 1, 'one bridge per Valkey for Pub/Sub');
  assert.equal(deployment.spec.strategy.type, 'Recreate', 'never two during a rollout');
  const pod = deployment.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const [uid] = dockerInstructions(fs.readFileSync(DOCKERFILE, 'utf8')).find((s) => s.op === 'USER').args.split(':');
  assert.equal(String(pod.securityContext.runAsUser), uid, 'the image\'s user');
  assert.ok(pod.terminationGracePeriodSeconds > 10, 'longer than the default shutdown timeout');
  const [container] = pod.containers;
  assert.equal(container.envFrom[0].secretRef.name, secret.metadata.name);
  assert.ok(secret.stringData.PUBLISH_API_KEY && secret.stringData.VALKEY_URL.startsWith('rediss://'), 'the API key and a TLS URL in the Secret');
  const names = [...Object.keys(secret.stringData), ...container.env.map((e) => e.name)];
  for (const name of names) assert.ok(knownVariables().has(name), `the bridge reads ${name}`);
  const metricsAddr = container.env.find((e) => e.name === 'BRIDGE_METRICS_ADDR').value;
  const port = container.ports.find((p) => p.name === 'metrics');
  assert.equal(String(port.containerPort), metricsAddr.split(':').pop());
  for (const probe of [container.livenessProbe, container.readinessProbe]) {
    assert.equal(probe.httpGet.path, '/healthz', 'the bridge serves /healthz (tests/bridge-packaging: the probe test)');
    assert.equal(probe.httpGet.port, 'metrics');
  }
  assert.ok(container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true, 'the bridge writes no file');
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
});

test('the deployment guide shows the Dockerfile, the unit and the manifest as they are', () => {
  const doc = fs.readFileSync(DEPLOY_DOC, 'utf8');
  for (const file of [DOCKERFILE, UNIT, MANIFEST]) {
    const body = fs.readFileSync(file, 'utf8').trimEnd();
    assert.ok(doc.includes(body), `docs/deploy.md includes ${path.relative(ROOT, file)} verbatim`);
  }
});
