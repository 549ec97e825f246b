// Usage metrics: with the USAGE Analytics Engine dataset bound, every stream
// open and end (by cause), every channel of a publish, every refusal (by
// code) and the progress of open streams are written as data points in the
// documented columns, per tenant, with no token or event data in any of them.
// Without the binding nothing is written (the other suites run that way).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
import { startWorker, logCollector, usagePoints, ROOT } from './support/worker.mjs';
import { token, subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';
import { publish, streamUrl } from './support/sse.mjs';
import { rawStream, eventsOf } from './support/http.mjs';

const BLOBS = ['kind', 'detail', 'prefix', 'channel', 'route'];
const DOUBLES = ['count', 'events', 'bytes', 'seconds', 'channels', 'status'];
const INTERVAL_SECONDS = 1;
const KEEP_ALIVE = ': keep-alive\n\n';

/** A point as the docs name its columns. */
const named = (p) => ({
  tenant: p.indexes[0],
  ...Object.fromEntries(BLOBS.map((b, i) => [b, p.blobs[i]])),
  ...Object.fromEntries(DOUBLES.map((d, i) => [d, p.doubles[i]])),
});

const now = () => Math.floor(Date.now() / 1000);
const sum = (points, column) => points.reduce((n, p) => n + p[column], 0);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let worker;
const logs = logCollector();
const points = () => usagePoints(logs.lines).map(named);
/** Every secret a point must not carry: tokens and event data. */
const secrets = [];

async function waitFor(predicate, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = predicate(points());
    if (found) return found;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; points: ${JSON.stringify(points()).slice(0, 3000)}`);
    await sleep(50);
  }
}

const ev = (channel, marker, i) => ({ channel, event: `secret.${marker}`, data: { marker, i } });
const dataBytes = (events) => events.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e.data)), 0);

/** Publishes and remembers the token and the data as secrets. */
async function publishAs(credential, events) {
  secrets.push(credential, ...events.map((e) => JSON.stringify(e.data)), ...events.map((e) => e.event));
  const res = await publish(worker.url, credential, { events });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  return res;
}

/** Opens a raw stream and remembers its token. */
async function open(channels, credential) {
  secrets.push(credential);
  const s = await rawStream(streamUrl(worker.url, channels), { headers: { Authorization: `Bearer ${credential}` } });
  assert.equal(s.res.status, 200);
  await s.opened();
  return s;
}

const ends = (tenant) => (ps) => ps.filter((p) => p.tenant === tenant && p.kind === 'stream_end');

before(async () => {
  worker = await startWorker({
    usage: true,
    // A stream notices its client left at its next write: keep-alives come soon.
    vars: { USAGE_INTERVAL_SECONDS: String(INTERVAL_SECONDS), KEEPALIVE_SECONDS: '2' },
    handleStructuredLogs: logs.handleStructuredLogs,
  });
});
after(async () => {
  await worker?.stop();
});

describe('usage data points', () => {
  const a = newTenant();
  const b = newTenant();

  it('publishes: one point per channel, in its tenant, counting events, data bytes and requests', async () => {
    const a1 = channelOf(a, 'pub-1');
    const b1 = channelOf(b, 'pub-1', 'chat');
    const b2 = channelOf(b, 'pub-2', 'chat');
    const aEvents = [ev(a1, 'alpha-data', 1), ev(a1, 'alpha-data', 2), ev(a1, 'alpha-data', 3)];
    await publishAs(await publisher(a), aEvents);
    const bEvents = [ev(b1, 'bravo-data', 1), ev(b2, 'bravo-data', 2), ev(b1, 'bravo-data', 3)];
    await publishAs(await publisher(b), bEvents);
    // A retried batch (same idempotency key) is not counted again.
    const keyed = [{ ...ev(b2, 'bravo-retry', 4), idempotency_key: 'k-1' }];
    await publishAs(await publisher(b), keyed);
    await publishAs(await publisher(b), keyed);

    const ofA = await waitFor((ps) => {
      const found = ps.filter((p) => p.kind === 'publish' && p.tenant === a);
      return found.length === 1 && found;
    }, "A's publish point");
    assert.deepEqual(ofA.map(({ prefix, channel, count, events, bytes }) => ({ prefix, channel, count, events, bytes })), [
      { prefix: 'scan-progress', channel: a1, count: 1, events: 3, bytes: dataBytes(aEvents) },
    ]);

    const ofB = await waitFor((ps) => {
      const found = ps.filter((p) => p.kind === 'publish' && p.tenant === b);
      return found.length === 4 && found;
    }, "B's four publish points");
    const byChannel = (channel) => ofB.filter((p) => p.channel === channel);
    assert.equal(sum(byChannel(b1), 'events'), 2);
    assert.equal(sum(byChannel(b1), 'bytes'), dataBytes([bEvents[0], bEvents[2]]));
    assert.equal(sum(byChannel(b2), 'events'), 2, 'one of the batch and the keyed event once');
    assert.equal(sum(byChannel(b2), 'bytes'), dataBytes([bEvents[1], ...keyed]));
    assert.equal(sum(ofB, 'count'), 3, 'three requests');
    for (const p of [...ofA, ...ofB]) {
      assert.equal(p.detail, '');
      assert.equal(p.route, '');
      assert.equal(p.channels, 1);
    }
  });

  it('a stream of one channel: open, progress while open, end by client_gone, deliveries and bytes as sent', async () => {
    const channel = channelOf(a, 'one');
    const s = await open([channel], await subscriber(a));
    const opened = await waitFor((ps) => ps.find((p) => p.tenant === a && p.kind === 'stream_open' && p.channels === 1), 'the open point');
    assert.equal(opened.count, 1);
    const events = [ev(channel, 'one-data', 1), ev(channel, 'one-data', 2)];
    await publishAs(await publisher(a), events);
    await s.until((t) => eventsOf(t).filter((e) => e.event.startsWith('secret.')).length === 2, 10_000, 'both events');
    // Open across a few intervals: progress points are written meanwhile.
    await waitFor((ps) => ps.filter((p) => p.tenant === a && p.kind === 'stream_progress').length >= 2, 'two progress points');
    await publishAs(await publisher(a), [ev(channel, 'one-data', 3)]);
    await s.until((t) => eventsOf(t).filter((e) => e.event.startsWith('secret.')).length === 3, 10_000, 'the third event');
    await s.close();
    const read = Buffer.byteLength(s.text);

    const [end] = await waitFor((ps) => ends(a)(ps).length === 1 && ends(a)(ps), 'the end point');
    assert.equal(end.detail, 'client_gone');
    assert.equal(end.count, 1);
    assert.equal(end.channels, 1);
    const progress = points().filter((p) => p.tenant === a && p.kind === 'stream_progress');
    assert.ok(progress.every((p) => p.count === 0 && p.channels === 0), 'progress points count no streams');
    const stream = [...progress, end];
    assert.equal(sum(stream, 'events'), 3, 'every event delivered, counted once');
    // Everything written is counted: what the client read, and the
    // keep-alives written after it left, until one failed.
    const unread = sum(stream, 'bytes') - read;
    assert.ok(unread >= 0 && unread % KEEP_ALIVE.length === 0, `${unread} bytes counted that were not a keep-alive the client missed`);
    const seconds = sum(stream, 'seconds');
    assert.ok(seconds >= 2 * INTERVAL_SECONDS && seconds < 30, `${seconds} s open`);
  });

  it('a stream of two channels ended by a kick: its deliveries and the kicked cause', async () => {
    const c1 = channelOf(b, 'two-1');
    const c2 = channelOf(b, 'two-2');
    const s = await open([c1, c2], await subscriber(b, { sub: 'kick-me' }));
    await publishAs(await publisher(b), [ev(c1, 'two-data', 1), ev(c2, 'two-data', 2), ev(c2, 'two-data', 3)]);
    await s.until((t) => eventsOf(t).filter((e) => e.event.startsWith('secret.')).length === 3, 10_000, 'three events');
    const admin = await token({ scope: 'events:admin events:platform' });
    secrets.push(admin);
    const kick = await fetch(new URL('/v1/admin/kick', worker.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ tenant: b, user: 'kick-me', ttl_seconds: 1 }),
    });
    assert.equal(kick.status, 200, await kick.text());
    const text = await s.end(10_000);
    assert.equal(eventsOf(text).at(-1).event, 'stream-error');

    const [end] = await waitFor((ps) => ends(b)(ps).length === 1 && ends(b)(ps), 'the end point');
    assert.equal(end.detail, 'kicked');
    assert.equal(end.channels, 2);
    const stream = [...points().filter((p) => p.tenant === b && p.kind === 'stream_progress'), end];
    assert.equal(sum(stream, 'events'), 3);
    assert.equal(sum(stream, 'bytes'), Buffer.byteLength(text), 'what was written is what the client read, the stream-error included');
    assert.ok(points().some((p) => p.tenant === b && p.kind === 'stream_open' && p.channels === 2));
  });

  it('a stream whose token expires ends with token_expired', async () => {
    const c = newTenant();
    const s = await open([channelOf(c)], await subscriber(c, { exp: now() + 2 }));
    await s.end(10_000);
    const [end] = await waitFor((ps) => ends(c)(ps).length === 1 && ends(c)(ps), 'the end point');
    assert.equal(end.detail, 'token_expired');
    assert.equal(end.events, 0);
    assert.equal(points().filter((p) => p.tenant === c && p.kind === 'stream_open').length, 1);
  });

  it('refusals by code and status: none in a tenant before the credential is verified, the tenant after', async () => {
    const c = newTenant();
    const forged = await token({ tenant_id: c }, { secret: 'another-secret-0123456789abcdef-xyz' });
    const own = await subscriber(c);
    const ownPublisher = await publisher(c);
    secrets.push(forged, own, ownPublisher);
    const other = channelOf(newTenant(), 'not-yours');

    const refused = async (url, init, status) => {
      const res = await fetch(url, init);
      assert.equal(res.status, status);
      await res.text();
    };
    await refused(streamUrl(worker.url, [channelOf(c)]), { headers: { Authorization: `Bearer ${forged}` } }, 401);
    await refused(streamUrl(worker.url, [other]), { headers: { Authorization: `Bearer ${own}` } }, 403);
    await refused(new URL('/v1/publish', worker.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${ownPublisher}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(ev(other, 'refused-data', 1)),
    }, 403);
    await refused(new URL(`/v1/${encodeURIComponent(own)}`, worker.url), {}, 404);

    const refusals = await waitFor((ps) => {
      const found = ps.filter((p) => p.kind === 'refusal');
      return found.length >= 4 && found;
    }, 'four refusals');
    const seen = refusals.map(({ tenant, detail, status, route, count }) => ({ tenant, detail, status, route, count }));
    assert.deepEqual(seen.find((p) => p.detail === 'invalid_token'), {
      tenant: '', detail: 'invalid_token', status: 401, route: '/v1/stream', count: 1,
    });
    assert.deepEqual(seen.filter((p) => p.detail === 'channel_forbidden'), [
      { tenant: c, detail: 'channel_forbidden', status: 403, route: '/v1/stream', count: 1 },
      { tenant: c, detail: 'channel_forbidden', status: 403, route: '/v1/publish', count: 1 },
    ]);
    assert.deepEqual(seen.find((p) => p.detail === 'not_found'), {
      tenant: '', detail: 'not_found', status: 404, route: 'other', count: 1,
    }, 'an unknown path is not named');
    assert.equal(points().filter((p) => p.tenant === c && p.kind === 'stream_open').length, 0);
  });

  it('no point carries a token or event data, and every point has the documented shape', async () => {
    assert.ok(secrets.length > 10);
    const raw = usagePoints(logs.lines);
    assert.ok(raw.length > 10, `${raw.length} points`);
    for (const p of raw) {
      assert.equal(p.indexes.length, 1);
      assert.equal(p.blobs.length, BLOBS.length);
      assert.equal(p.doubles.length, DOUBLES.length);
      const text = JSON.stringify(p);
      for (const secret of secrets) {
        for (const part of secret.split('.').filter((x) => x.length > 8)) assert.ok(!text.includes(part), `a point carries ${part}: ${text}`);
        assert.ok(!text.includes(secret), `a point carries ${secret}: ${text}`);
      }
      assert.ok(!/secret\.|alpha-data|bravo|one-data|two-data|refused-data/.test(text), text);
    }
    const warned = logs.lines.filter((l) => l.message.includes('usage data point not written'));
    assert.deepEqual(warned, [], 'the recorder took every point');
  });
});

describe('the USAGE binding in wrangler.toml', () => {
  let dir;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'edgestream-usage-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is off as shipped, and the documented block, uncommented, binds an Analytics Engine dataset', async () => {
    const toml = await readFile(path.join(ROOT, 'wrangler.toml'), 'utf8');
    const shipped = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'), undefined, { envFiles: ['.none'] });
    assert.deepEqual(Object.keys(shipped.workerOptions.analyticsEngineDatasets ?? {}), [], 'not bound as shipped');
    const block = toml.match(/^# \[\[analytics_engine_datasets\]\]\n(# .*\n)+/m);
    assert.ok(block, 'the commented block is in wrangler.toml');
    const config = path.join(dir, 'wrangler.toml');
    const uncommented = block[0].replace(/^# /gm, '');
    await writeFile(config, `name = "t"\nmain = "index.js"\ncompatibility_date = "2026-04-20"\n${uncommented}`);
    await writeFile(path.join(dir, 'index.js'), 'export default {}');
    const { workerOptions } = unstable_getMiniflareWorkerOptions(config, undefined, { envFiles: ['.none'] });
    assert.deepEqual(Object.keys(workerOptions.analyticsEngineDatasets ?? {}), ['USAGE']);
  });
});

describe('the documented queries', () => {
  const KINDS = ['stream_open', 'stream_progress', 'stream_end', 'publish', 'refusal'];
  const COLUMNS = ['index1', ...BLOBS.map((_, i) => `blob${i + 1}`), ...DOUBLES.map((_, i) => `double${i + 1}`)];

  /** Fails on a column the points do not have or a kind they never carry. */
  function checkQuery(sql) {
    for (const [column] of sql.matchAll(/\b(?:blob|double|index)\d+\b/g)) assert.ok(COLUMNS.includes(column), `${column} in ${sql}`);
    const kinds = [
      ...[...sql.matchAll(/blob1\s*=\s*'([^']*)'/g)].map((m) => m[1]),
      ...[...sql.matchAll(/blob1\s+IN\s*\(([^)]*)\)/g)].flatMap((m) => [...m[1].matchAll(/'([^']*)'/g)].map((k) => k[1])),
    ];
    assert.ok(kinds.length > 0, `a query of one kind or more: ${sql}`);
    for (const kind of kinds) assert.ok(KINDS.includes(kind), `kind ${kind} in ${sql}`);
    assert.match(sql, /_sample_interval/, `sums weigh by the sample interval: ${sql}`);
  }

  it('operations.md and the dashboard read only the columns and kinds the points have', async () => {
    const ops = await readFile(path.join(ROOT, 'docs/operations.md'), 'utf8');
    const section = ops.slice(ops.indexOf('## Usage metrics'), ops.indexOf('## Troubleshooting'));
    const queries = [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.ok(queries.length >= 4, `${queries.length} queries`);
    const dashboard = JSON.parse(await readFile(path.join(ROOT, 'docs/usage-dashboard.json'), 'utf8'));
    const panels = dashboard.panels.flatMap((p) => p.targets.map((t) => t.query));
    assert.ok(panels.length >= 6, `${panels.length} panels`);
    for (const sql of [...queries, ...panels]) checkQuery(sql);
  });
});
