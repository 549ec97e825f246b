// Per-tenant quotas: open streams (MAX_STREAMS_PER_TENANT) and publishes per
// period (the PUBLISH_QUOTA rate-limiting binding). Over either is 429
// quota_exceeded with Retry-After; another tenant is never affected; without
// the setting and the binding nothing is limited.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './support/worker.mjs';
import { subscriber, publisher, platformPublisher, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish } from './support/sse.mjs';
import { assertProblem, openStream, assertStreamOpens, channelStats } from './support/http.mjs';

const MAX_STREAMS = 3;
const PUBLISHES = 3;
const PERIOD = 10;

let limited;
let unlimited;

before(async () => {
  [limited, unlimited] = await Promise.all([
    startWorker({
      // A closed stream is noticed at its next keep-alive at the latest.
      vars: { MAX_STREAMS_PER_TENANT: String(MAX_STREAMS), PUBLISH_QUOTA_PERIOD_SECONDS: String(PERIOD), KEEPALIVE_SECONDS: '1' },
      ratelimits: { PUBLISH_QUOTA: { simple: { limit: PUBLISHES, period: PERIOD } } },
    }),
    startWorker(),
  ]);
});
after(async () => {
  await Promise.all([limited?.stop(), unlimited?.stop()]);
});

const ev = (channel, n) => ({ channel, event: 'scan.progress', data: { n } });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the local rate limiter's fixed window has most of its period
 * ahead, so that a test's publishes all fall in one window.
 */
async function startOfWindow() {
  const into = Date.now() % (PERIOD * 1000);
  if (into > 2000) await sleep(PERIOD * 1000 - into + 50);
}

async function assertOverQuota(res, retryAfter, text) {
  const problem = await assertProblem(res, 429, 'quota_exceeded', { text });
  assert.equal(res.headers.get('retry-after'), String(retryAfter));
  return problem;
}

describe('open streams per tenant', () => {
  it('admits the limit, refuses one more before any channel object, readmits when one closes; other tenants are unaffected', async () => {
    const base = limited.url;
    const a = newTenant();
    const channel = channelOf(a);
    const token = await subscriber(a);
    const open = [];
    try {
      for (let i = 0; i < MAX_STREAMS; i++) {
        const sub = subscribe(base, [channel], { token });
        open.push(sub);
        await sub.opened();
      }
      const over = await openStream(base, [channel], { token });
      const problem = await assertOverQuota(over.res, 10, over.text);
      assert.match(problem.detail, new RegExp(`${MAX_STREAMS} streams`));
      // A stream of several channels takes one slot, and is refused alike.
      const many = await openStream(base, [channelOf(a), channelOf(a)], { token });
      await assertOverQuota(many.res, 10, many.text);
      assert.equal((await channelStats(base, channel)).streams, MAX_STREAMS);

      // Another tenant opens its own streams meanwhile.
      const b = newTenant();
      const other = [];
      try {
        for (let i = 0; i < MAX_STREAMS; i++) {
          const sub = subscribe(base, [channelOf(b)], { token: await subscriber(b) });
          other.push(sub);
          await sub.opened();
        }
      } finally {
        for (const sub of other) sub.close();
      }

      open.shift().close();
      const deadline = Date.now() + 10_000;
      let readmitted;
      while (Date.now() < deadline) {
        readmitted = await openStream(base, [channel], { token });
        if (readmitted.status === 200) break;
        await sleep(100);
      }
      assert.equal(readmitted.status, 200, `a closed stream's slot is given back: ${readmitted.text}`);
    } finally {
      for (const sub of open) sub.close();
    }
  });
});

describe('publishes per period per tenant', () => {
  it('over the quota is 429 with Retry-After and nothing is stored or delivered; another tenant is unaffected', async () => {
    const base = limited.url;
    const [a, b] = [newTenant(), newTenant()];
    const [channelA, channelB] = [channelOf(a), channelOf(b)];
    const subA = subscribe(base, [channelA], { token: await subscriber(a), types: ['scan.progress'] });
    const subB = subscribe(base, [channelB], { token: await subscriber(b), types: ['scan.progress'] });
    try {
      await Promise.all([subA.opened(), subB.opened()]);
      await startOfWindow();
      const tokenA = await publisher(a);
      for (let n = 1; n <= PUBLISHES; n++) {
        const r = await publish(base, tokenA, ev(channelA, n));
        assert.equal(r.status, 202, r.text);
      }
      const refused = [
        await publish(base, tokenA, ev(channelA, 'over')),
        await publish(base, tokenA, { events: [ev(channelA, 'batch-1'), ev(channelA, 'batch-2')] }),
        // A platform publisher writing to the tenant counts against it too.
        await publish(base, await platformPublisher(), ev(channelA, 'platform')),
      ];
      for (const r of refused) {
        assert.equal(r.status, 429, r.text);
        assert.equal(r.body.code, 'quota_exceeded');
        assert.equal(r.headers.get('retry-after'), String(PERIOD));
        assert.match(r.headers.get('content-type'), /^application\/problem\+json/);
      }
      // Tenant B, while A is over: a batch of five is one publish.
      const rb = await publish(base, await publisher(b), { events: [1, 2, 3, 4, 5].map((n) => ev(channelB, n)) });
      assert.equal(rb.status, 202, rb.text);
      await subB.waitForData(5, 5000);
      await subA.waitForData(PUBLISHES, 5000);
      await sleep(300);
      assert.deepEqual(
        subA.data().map((e) => JSON.parse(e.data).n),
        [1, 2, 3],
        'refused publishes were neither stored nor delivered',
      );
      // Nothing was stored either: the channel's next id follows the three.
      const stats = await channelStats(base, channelA);
      assert.equal(stats.last_id, PUBLISHES);
    } finally {
      subA.close();
      subB.close();
    }
  });

  it('a platform batch naming an over-quota tenant is refused whole', async () => {
    const base = limited.url;
    const [a, c] = [newTenant(), newTenant()];
    await startOfWindow();
    const tokenA = await publisher(a);
    for (let n = 1; n <= PUBLISHES; n++) assert.equal((await publish(base, tokenA, ev(channelOf(a, 'r'), n))).status, 202);
    const fresh = channelOf(c);
    const r = await publish(base, await platformPublisher(), { events: [ev(fresh, 1), ev(channelOf(a, 'r'), 2)] });
    assert.equal(r.status, 429, r.text);
    assert.equal(r.headers.get('retry-after'), String(PERIOD));
    assert.equal((await channelStats(base, fresh)).last_id, null, 'the other tenant’s event was not stored');
  });
});

describe('without the setting and the binding', () => {
  it('nothing is limited', async () => {
    const base = unlimited.url;
    const t = newTenant();
    const channel = channelOf(t);
    const token = await subscriber(t);
    const open = [];
    try {
      for (let i = 0; i < MAX_STREAMS + 3; i++) {
        const sub = subscribe(base, [channel], { token, types: ['scan.progress'] });
        open.push(sub);
        await sub.opened();
      }
      await assertStreamOpens(base, [channel], { token });
      const tokenP = await publisher(t);
      for (let n = 1; n <= PUBLISHES * 4; n++) {
        const r = await publish(base, tokenP, ev(channel, n));
        assert.equal(r.status, 202, r.text);
      }
      await open[0].waitForData(PUBLISHES * 4, 5000);
    } finally {
      for (const sub of open) sub.close();
    }
  });
});
