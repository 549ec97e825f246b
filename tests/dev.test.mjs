// The development routes (`/demo`, its assets, `POST /dev/token`): served only
// when DEV_MODE is 1 and the request names a loopback host; a 404 problem
// everywhere else, exactly like an unknown path.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { startWorker, logCollector } from './support/worker.mjs';
import { assertProblem } from './support/http.mjs';
import { publish, readRaw, streamUrl } from './support/sse.mjs';
import { newTenant, channelOf } from './support/tokens.mjs';

const DEV_PATHS = [
  ['GET', '/demo'],
  ['GET', '/demo/'],
  ['GET', '/demo/app.js'],
  ['GET', '/demo/style.css'],
  ['POST', '/dev/token'],
];

async function devRequest(worker, base, method, path, body) {
  const url = new URL(path, base);
  const init = { method };
  if (method === 'POST') {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body ?? { tenant: newTenant(), publish: false });
  }
  // dispatchFetch delivers the request with exactly this URL, host included,
  // as a request for a deployed hostname would arrive.
  return worker.mf.dispatchFetch(url, init);
}

async function mint(base, body) {
  const res = await fetch(new URL('/dev/token', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { res, body: res.headers.get('content-type')?.startsWith('application/json') ? await res.json() : await res.text() };
}

describe('dev routes without DEV_MODE', () => {
  let worker;
  before(async () => {
    worker = await startWorker({ handleStructuredLogs: logCollector().handleStructuredLogs });
  });
  after(async () => {
    await worker?.stop();
  });

  for (const [method, path] of DEV_PATHS) {
    it(`${method} ${path} is a 404 problem on a loopback host`, async () => {
      for (const base of [worker.url, 'http://localhost:8787', 'http://[::1]:8787']) {
        const res = await devRequest(worker, base, method, path);
        await assertProblem(res, 404, 'not_found');
      }
    });
  }

  for (const value of ['0', 'true', 'yes', '']) {
    it(`DEV_MODE=${JSON.stringify(value)} does not enable them`, async () => {
      const other = await startWorker({ vars: { DEV_MODE: value }, handleStructuredLogs: logCollector().handleStructuredLogs });
      try {
        await assertProblem(await fetch(new URL('/demo', other.url)), 404, 'not_found');
        await assertProblem(await devRequest(other, other.url, 'POST', '/dev/token'), 404, 'not_found');
      } finally {
        await other.stop();
      }
    });
  }
});

describe('dev routes with DEV_MODE=1', () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { DEV_MODE: '1' }, handleStructuredLogs: logCollector().handleStructuredLogs });
  });
  after(async () => {
    await worker?.stop();
  });

  const PUBLIC_HOSTS = [
    'https://edgestream.example.com',
    'https://relay.example.com:8443',
    'http://localhost.example.com',
    'http://127.0.0.1.nip.io',
    'http://10.0.0.1',
    'http://192.168.1.10:8787',
    'http://[2001:db8::1]',
    'http://[::ffff:7f00:1]',
  ];
  for (const [method, path] of DEV_PATHS) {
    it(`${method} ${path} is a 404 problem on a non-loopback host`, async () => {
      for (const base of PUBLIC_HOSTS) {
        const res = await devRequest(worker, base, method, path);
        await assertProblem(res, 404, 'not_found');
      }
    });
  }

  it('serves the demo page and its assets on loopback hosts', async () => {
    for (const base of [worker.url, 'http://localhost:8787', 'http://LOCALHOST', 'http://[::1]:8787', 'http://127.0.0.2']) {
      const res = await devRequest(worker, base, 'GET', '/demo');
      assert.equal(res.status, 200, base);
      assert.match(res.headers.get('content-type'), /^text\/html/);
      assert.match(res.headers.get('content-security-policy'), /default-src 'self'/);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const html = await res.text();
      assert.match(html, /<title>edgestream demo<\/title>/);
      assert.match(html, /src="\/demo\/app\.js"/);
    }
    const js = await fetch(new URL('/demo/app.js', worker.url));
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type'), /^text\/javascript/);
    assert.match(await js.text(), /new EventSource\(/);
    const css = await fetch(new URL('/demo/style.css', worker.url));
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type'), /^text\/css/);
    await assertProblem(await fetch(new URL('/demo/missing.js', worker.url)), 404, 'not_found');
  });

  it('mints an hour-long access token for the tenant', async () => {
    const tenant = newTenant();
    const { res, body } = await mint(worker.url, { tenant, publish: false });
    assert.equal(res.status, 200);
    const claims = decodeJwt(body.token);
    assert.equal(claims.tenant_id, tenant);
    assert.equal(claims.token_type, 'access');
    assert.equal(typeof claims.sub, 'string');
    assert.equal(claims.exp - claims.iat, 3600);
    assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 60);
    assert.equal(claims.scope, undefined);
    assert.equal(body.expires_at, claims.exp);
  });

  it('a subscriber token opens a stream and a publish token publishes', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const sub = (await mint(worker.url, { tenant, publish: false })).body.token;
    const pub = (await mint(worker.url, { tenant, publish: true })).body.token;
    assert.equal(decodeJwt(pub).scope, 'events:publish');

    const refused = await publish(worker.url, sub, { channel, event: 'scan.progress', data: { pct: 1 } });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'insufficient_scope');

    const published = await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: 5 } });
    assert.equal(published.status, 202, published.text);
    const { res, text } = await readRaw(streamUrl(worker.url, [channel], { access_token: sub }), {
      done: (t) => t.includes('data: {"pct":5}'),
    });
    assert.equal(res.status, 200);
    assert.match(text, /event: scan\.progress\ndata: \{"pct":5\}/);

    // The token is bound to its tenant like any other.
    const other = channelOf(newTenant());
    const forbidden = await fetch(streamUrl(worker.url, [other], { access_token: sub }));
    await assertProblem(forbidden, 403, 'channel_forbidden');
  });

  it('refuses a malformed request', async () => {
    for (const body of [
      { tenant: 'not-a-uuid' },
      { tenant: newTenant().toUpperCase() },
      { publish: true },
      { tenant: newTenant(), publish: true, scope: 'events:admin' },
      'not json',
    ]) {
      const res = await fetch(new URL('/dev/token', worker.url), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      await assertProblem(res, 400, 'invalid_body');
    }
    const get = await fetch(new URL('/dev/token', worker.url));
    await assertProblem(get, 405, 'method_not_allowed');
    assert.equal(get.headers.get('allow'), 'POST');
  });
});
