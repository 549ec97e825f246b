// Deployability: the staging and production environments of wrangler.toml
// resolve to complete Workers (bindings, migrations, settings; never the dev
// routes), and the bundle-size check used after `wrangler deploy --dry-run`
// (see scripts/test) passes a real bundle and fails an oversized one.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { unstable_readConfig } from 'wrangler';
import { ROOT } from './support/worker.mjs';

const run = promisify(execFile);
const CONFIG = path.join(ROOT, 'wrangler.toml');
const ENVS = ['staging', 'production'];
const readConfig = (env) => unstable_readConfig({ config: CONFIG, env }, { hideWarnings: true });

describe('wrangler environments', () => {
  const top = readConfig(undefined);

  for (const env of ENVS) {
    it(`[env.${env}] is a complete Worker of its own`, () => {
      const config = readConfig(env);
      assert.equal(config.name, `edgestream-${env}`);
      assert.equal(config.main, top.main);
      assert.equal(config.compatibility_date, top.compatibility_date);
      assert.deepEqual(config.compatibility_flags, top.compatibility_flags);
      assert.equal(config.build.command, top.build.command);
      // Not inherited by wrangler, so listed per environment: they must not drift.
      assert.deepEqual(config.durable_objects.bindings, top.durable_objects.bindings, 'Durable Object bindings');
      assert.deepEqual(config.migrations, top.migrations, 'migrations');
      assert.deepEqual(Object.keys(config.vars).sort(), Object.keys(top.vars).sort(), 'the same settings');
      // Other bindings may name per-environment resources (a KV namespace id),
      // but every binding the code reads must exist in each environment.
      for (const kind of ['kv_namespaces', 'r2_buckets', 'd1_databases', 'services', 'queues', 'analytics_engine_datasets']) {
        const names = (c) => [...(kind === 'queues' ? c.queues?.producers ?? [] : c[kind] ?? [])].map((b) => b.binding).sort();
        assert.deepEqual(names(config), names(top), `${kind} bindings`);
      }
      for (const [name, value] of Object.entries(config.vars)) assert.equal(typeof value, 'string', name);
      assert.deepEqual(
        (config.ratelimits ?? []).map((r) => r.name).sort(),
        (top.ratelimits ?? []).map((r) => r.name).sort(),
        'rate-limiting bindings',
      );
    });
  }

  it('the publish quota binding shown in wrangler.toml is valid and matches PUBLISH_QUOTA_PERIOD_SECONDS', async () => {
    const text = await readFile(CONFIG, 'utf8');
    const example = text.match(/^# \[\[ratelimits\]\]\n(?:# .*\n)+/m);
    assert.ok(example, 'wrangler.toml shows the [[ratelimits]] block');
    const block = example[0].replace(/^# /gm, '');
    const dir = await mkdtemp(path.join(tmpdir(), 'edgestream-ratelimit-'));
    try {
      const config = path.join(dir, 'wrangler.toml');
      await writeFile(config, `name = "x"\nmain = "index.js"\ncompatibility_date = "2026-04-20"\n${block}`);
      const { ratelimits } = unstable_readConfig({ config }, { hideWarnings: true });
      assert.equal(ratelimits.length, 1);
      assert.equal(ratelimits[0].name, 'PUBLISH_QUOTA');
      for (const env of [undefined, ...ENVS]) {
        const configured = readConfig(env);
        for (const binding of [...(configured.ratelimits ?? []), ...ratelimits].filter((r) => r.name === 'PUBLISH_QUOTA')) {
          assert.equal(String(binding.simple.period), configured.vars.PUBLISH_QUOTA_PERIOD_SECONDS, `${env ?? 'top-level'}: the binding's period`);
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('no environment enables the development routes', () => {
    for (const env of [undefined, ...ENVS]) {
      const vars = readConfig(env).vars;
      assert.equal(vars.DEV_MODE, undefined, `DEV_MODE in ${env ?? 'top-level'} vars`);
    }
  });

  it('every Durable Object class is migrated and exported by the built worker', async () => {
    const migrated = top.migrations.flatMap((m) => [...(m.new_sqlite_classes ?? []), ...(m.new_classes ?? [])]);
    const bundle = await readFile(path.join(ROOT, 'build/index.js'), 'utf8');
    const exported = [...bundle.matchAll(/export\s*\{([^}]*)\}/g)]
      .flatMap((m) => m[1].split(','))
      .map((e) => e.trim().split(/\s+as\s+/).pop());
    for (const { class_name } of top.durable_objects.bindings) {
      assert.ok(migrated.includes(class_name), `${class_name} has a migration`);
      assert.ok(exported.includes(class_name), `build/index.js exports ${class_name}`);
    }
  });
});

describe('bundle size check (scripts/check-bundle.mjs)', () => {
  let dir;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'edgestream-bundle-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const check = (d, ...args) =>
    run(process.execPath, [path.join(ROOT, 'scripts/check-bundle.mjs'), d, ...args]).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e) => ({ code: e.code, out: `${e.stdout}${e.stderr}` }),
    );

  it('passes the worker as built (build/)', async () => {
    const r = await check(path.join(ROOT, 'build'));
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /within the 3072\.0 KiB limit/);
  });

  it('fails a bundle over the limit, or one without a wasm module', async () => {
    const big = path.join(dir, 'big');
    await mkdir(big);
    await writeFile(path.join(big, 'index.js'), 'export default {}');
    // Random bytes do not compress: 3.5 MiB stays over 3 MiB gzipped.
    await writeFile(path.join(big, 'index_bg.wasm'), randomBytes(3.5 * 1024 * 1024));
    await writeFile(path.join(big, 'index.js.map'), randomBytes(16));
    const over = await check(big);
    assert.equal(over.code, 1, over.out);
    assert.match(over.out, /OVER/);
    const lower = await check(big, '--limit-gzip-bytes', String(5 * 1024 * 1024));
    assert.equal(lower.code, 0, lower.out);

    const nowasm = path.join(dir, 'nowasm');
    await mkdir(nowasm);
    await writeFile(path.join(nowasm, 'index.js'), 'export default {}');
    assert.equal((await check(nowasm)).code, 1);
  });
});
