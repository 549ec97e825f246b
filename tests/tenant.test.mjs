// The tenant gate of GET /v1/stream: channel names must parse, every channel
// must belong to the token's tenant, the whole request fails otherwise, and
// tenants never see each other's events.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, publisher, platformPublisher, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish } from './support/sse.mjs';
import { assertProblem, assertStreamOpens, openStream, quote } from './support/http.mjs';

let worker;
let base;
const logs = logCollector();

before(async () => {
  // MAX_CHANNELS_PER_STREAM is wrangler.toml's (5), the contract's default.
  worker = await startWorker({ handleStructuredLogs: logs.handleStructuredLogs });
  base = worker.url;
});
after(async () => {
  await worker?.stop();
});

async function assertStreamProblem(tenantOrToken, channels, status, code, options = {}) {
  const token = tenantOrToken.includes('.') ? tenantOrToken : await subscriber(tenantOrToken);
  const r = await openStream(base, channels, { token, ...options });
  return assertProblem(r.res, status, code, { text: r.text });
}

describe('channel names', () => {
  const t = newTenant();
  const other = newTenant();
  const malformed = {
    'two segments': `scan-progress:${t}`,
    'four segments': `scan-progress:${t}:r1:extra`,
    'separator injected into the resource': `scan-progress:${t}:r1:${other}`,
    'separator injected into the prefix': `scan-progress:${other}:${t}:r1`,
    'uppercase tenant UUID': `scan-progress:${t.toUpperCase()}:r1`,
    'tenant that is not a UUID': 'scan-progress:tenant-1:r1',
    'UUID without hyphens': `scan-progress:${t.replaceAll('-', '')}:r1`,
    'UUID in braces': `scan-progress:{${t}}:r1`,
    'empty prefix': `:${t}:r1`,
    'empty resource': `scan-progress:${t}:`,
    'prefix starting with a digit': `1scan:${t}:r1`,
    'prefix with uppercase': `Scan-progress:${t}:r1`,
    'prefix with underscore': `scan_progress:${t}:r1`,
    'prefix of 65 characters': `${'p'.repeat(65)}:${t}:r1`,
    'resource of 129 characters': `scan-progress:${t}:${'r'.repeat(129)}`,
    'resource with a slash': `scan-progress:${t}:a/b`,
    'resource with a space': `scan-progress:${t}:a b`,
    'resource with a comma': `scan-progress:${t}:a,b`,
    'resource with non-ASCII': `scan-progress:${t}:caf\u00e9`,
    'resource with a NUL byte': `scan-progress:${t}:a\u0000b`,
    'resource with a newline': `scan-progress:${t}:a\nb`,
    'empty name': '',
  };
  for (const [what, name] of Object.entries(malformed)) {
    it(`${what}: 400 invalid_channel`, async () => {
      await assertStreamProblem(t, [name], 400, 'invalid_channel');
    });
  }

  it('a colon percent-encoded in the query is still a separator after decoding: 400 invalid_channel', async () => {
    await assertStreamProblem(t, [], 400, 'invalid_channel', {
      rawQuery: `channel=scan-progress%3A${t}%3Ar1%3A${other}`,
    });
  });

  it('channel= is one name: a comma in it does not split it into two', async () => {
    const [a, b] = [channelOf(t), channelOf(t)];
    await assertStreamProblem(t, [`${a},${b}`], 400, 'invalid_channel');
  });

  it('an empty item in channels= is refused, not skipped', async () => {
    const [a, b] = [channelOf(t), channelOf(t)];
    await assertStreamProblem(t, [], 400, 'invalid_channel', { rawQuery: `channels=${a},,${b}` });
    await assertStreamProblem(t, [], 400, 'invalid_channel', { rawQuery: `channels=${a},` });
  });

  it('one malformed channel fails the whole request', async () => {
    await assertStreamProblem(t, [channelOf(t), `scan-progress:${t}`, channelOf(t)], 400, 'invalid_channel');
  });

  it('accepts names at the limits of every segment', async () => {
    const longest = `a${'b-9'.repeat(21)}`; // 64 characters
    assert.equal(longest.length, 64);
    const resource = `${'Az09-_.'.repeat(18)}xy`; // 128 characters
    assert.equal(resource.length, 128);
    const token = await subscriber(t);
    await assertStreamOpens(base, [`${longest}:${t}:${resource}`], { token });
    await assertStreamOpens(base, [`a:${t}:x`], { token });
  });
});

describe('tenant gate', () => {
  it("another tenant's channel: 403 channel_forbidden", async () => {
    const [mine, theirs] = [newTenant(), newTenant()];
    await assertStreamProblem(mine, [channelOf(theirs)], 403, 'channel_forbidden');
  });

  it("the whole request fails when one of several channels is another tenant's", async () => {
    const [mine, theirs] = [newTenant(), newTenant()];
    await assertStreamProblem(mine, [channelOf(mine), channelOf(theirs)], 403, 'channel_forbidden');
    await assertStreamProblem(mine, [channelOf(theirs), channelOf(mine), channelOf(mine)], 403, 'channel_forbidden');
    await assertStreamProblem(mine, [], 403, 'channel_forbidden', {
      rawQuery: `channels=${channelOf(mine)},${channelOf(theirs)}`,
    });
  });

  it('the tenant comparison is exact: an uppercase tenant claim does not match the lowercase channel', async () => {
    const t = newTenant();
    const token = await subscriber(t.toUpperCase());
    await assertStreamProblem(token, [channelOf(t)], 403, 'channel_forbidden');
  });

  it('a token without a tenant: 403 tenant_missing', async () => {
    const t = newTenant();
    const token = await subscriber(undefined);
    await assertStreamProblem(token, [channelOf(t)], 403, 'tenant_missing');
  });

  it('a platform publisher token (no tenant) cannot subscribe: 403 tenant_missing', async () => {
    await assertStreamProblem(await platformPublisher(), [channelOf(newTenant())], 403, 'tenant_missing');
  });

  it('a token whose tenant claim is not a string is refused', async () => {
    const t = newTenant();
    const r = await openStream(base, [channelOf(t)], { token: await subscriber([t]) });
    assert.ok([401, 403].includes(r.status), `got ${r.status} ${r.text}`);
  });

  it('no channel at all: 400 no_channels', async () => {
    const t = newTenant();
    await assertStreamProblem(t, [], 400, 'no_channels');
    await assertStreamProblem(t, [], 400, 'no_channels', { rawQuery: 'foo=bar' });
  });

  it('more than MAX_CHANNELS_PER_STREAM (5) channels: 400 too_many_channels; exactly 5 opens', async () => {
    const t = newTenant();
    const five = Array.from({ length: 5 }, () => channelOf(t));
    await assertStreamOpens(base, five, { token: await subscriber(t) });
    await assertStreamProblem(t, [...five, channelOf(t)], 400, 'too_many_channels');
    // Counted across channel= and channels= together.
    await assertStreamProblem(t, [], 400, 'too_many_channels', {
      rawQuery: `channels=${five.slice(0, 3).join(',')}&channel=${five[3]}&channel=${five[4]}&channel=${channelOf(t)}`,
    });
  });
});

describe('isolation', () => {
  it('a subscriber of tenant A never sees events of tenant B, even on the same prefix and resource', async () => {
    const [ta, tb] = [newTenant(), newTenant()];
    const [ca, cb] = [channelOf(ta, 'scan-7', 'scan-progress'), channelOf(tb, 'scan-7', 'scan-progress')];
    const subA = subscribe(base, [ca], { token: await subscriber(ta), types: ['scan.progress'] });
    const subB = subscribe(base, [cb], { token: await subscriber(tb), types: ['scan.progress'] });
    try {
      await Promise.all([subA.opened(), subB.opened()]);
      // B's events first, through both a tenant publisher and a platform one,
      // then one marker event for A.
      for (const n of [1, 2, 3]) {
        const r = await publish(base, await publisher(tb), { channel: cb, event: 'scan.progress', data: { tenant: 'b', n } });
        assert.equal(r.status, 202, r.text);
      }
      const p = await publish(base, await platformPublisher(), { channel: cb, event: 'scan.progress', data: { tenant: 'b', n: 4 } });
      assert.equal(p.status, 202, p.text);
      const m = await publish(base, await publisher(ta), { channel: ca, event: 'scan.progress', data: { tenant: 'a' } });
      assert.equal(m.status, 202, m.text);
      assert.deepEqual(m.body.results, [{ channel: ca, id: 1, duplicate: false }]);

      await subB.waitForData(4, 10_000);
      await subA.waitForData(1, 10_000);
      assert.deepEqual(subA.data(), [{ type: 'scan.progress', id: `${quote(ca)}:1`, data: '{"tenant":"a"}' }]);
      assert.deepEqual(
        subB.data().map((e) => [e.id, JSON.parse(e.data)]),
        [1, 2, 3, 4].map((n) => [`${quote(cb)}:${n}`, { tenant: 'b', n }]),
      );
    } finally {
      subA.close();
      subB.close();
    }
  });

  it("tenant A's token cannot open tenant B's channel through the query token either", async () => {
    const [ta, tb] = [newTenant(), newTenant()];
    const r = await openStream(base, [channelOf(tb)], { query: { access_token: await subscriber(ta) } });
    await assertProblem(r.res, 403, 'channel_forbidden', { text: r.text });
  });
});
