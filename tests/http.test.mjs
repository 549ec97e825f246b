// The HTTP surface around the three endpoints: health check, unknown paths,
// wrong methods, and CORS for the origins in ALLOWED_ORIGINS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, newTenant, channelOf } from './support/tokens.mjs';
import { assertProblem, openStream } from './support/http.mjs';

const ALLOWED = 'https://app.example';
let worker;
let base;
const logs = logCollector();

before(async () => {
  worker = await startWorker({
    vars: { ALLOWED_ORIGINS: `${ALLOWED},http://127.0.0.1:3000` },
    handleStructuredLogs: logs.handleStructuredLogs,
  });
  base = worker.url;
});
after(async () => {
  await worker?.stop();
});

describe('health and routing', () => {
  it('GET /healthz is 200 JSON', async () => {
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const body = await res.json();
    assert.equal(typeof body, 'object');
    assert.notEqual(body, null);
  });

  it('GET /healthz needs no credentials and ignores bad ones', async () => {
    const res = await fetch(`${base}/healthz`, { headers: { Authorization: 'Bearer nonsense' } });
    assert.equal(res.status, 200);
    await res.text();
  });

  for (const path of ['/', '/nope', '/v1', '/v1/streams', '/v2/stream', '/healthz/x', '/v1/stream/extra']) {
    it(`an unknown path (${path}) is a 404 problem`, async () => {
      const res = await fetch(`${base}${path}`);
      await assertProblem(res, 404, 'not_found');
    });
  }

  for (const [method, path] of [
    ['POST', '/healthz'],
    ['DELETE', '/healthz'],
    ['POST', '/v1/stream'],
    ['PUT', '/v1/stream'],
    ['GET', '/v1/publish'],
    ['PUT', '/v1/publish'],
    ['DELETE', '/v1/publish'],
  ]) {
    it(`${method} ${path} is a 405 problem`, async () => {
      const res = await fetch(`${base}${path}`, { method });
      await assertProblem(res, 405, 'method_not_allowed');
    });
  }

  it('a 405 names the allowed methods in Allow (RFC 9110 section 15.5.6)', async () => {
    for (const [method, path, allowed] of [
      ['POST', '/healthz', 'GET'],
      ['POST', '/v1/stream', 'GET'],
      ['GET', '/v1/publish', 'POST'],
    ]) {
      const res = await fetch(`${base}${path}`, { method });
      await res.text();
      assert.equal(res.status, 405);
      const allow = (res.headers.get('allow') ?? '').split(',').map((m) => m.trim().toUpperCase());
      assert.ok(allow.includes(allowed), `${method} ${path}: Allow is ${JSON.stringify(res.headers.get('allow'))}`);
      assert.ok(!allow.includes(method), `${method} ${path}: Allow names the refused method`);
    }
  });
});

describe('CORS', () => {
  it('a stream answers an allowed origin with Access-Control-Allow-Origin', async () => {
    const t = newTenant();
    const r = await openStream(base, [channelOf(t)], { token: await subscriber(t), headers: { Origin: ALLOWED } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), ALLOWED);
  });

  it('other origins get no Access-Control-Allow-Origin', async () => {
    const t = newTenant();
    for (const origin of ['https://evil.example', 'https://app.example.evil', 'http://app.example', 'null']) {
      const r = await openStream(base, [channelOf(t)], { token: await subscriber(t), headers: { Origin: origin } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('access-control-allow-origin'), null, origin);
    }
  });

  it('errors carry CORS headers for an allowed origin, so the page can read them', async () => {
    const r = await openStream(base, [channelOf(newTenant())], { headers: { Origin: ALLOWED } });
    await assertProblem(r.res, 401, 'missing_credentials', { text: r.text });
    assert.equal(r.headers.get('access-control-allow-origin'), ALLOWED);
  });

  it('a preflight from an allowed origin allows Authorization and Last-Event-ID', async () => {
    const res = await fetch(`${base}/v1/stream`, {
      method: 'OPTIONS',
      headers: {
        Origin: ALLOWED,
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'authorization,last-event-id',
      },
    });
    await res.text();
    assert.ok(res.status === 200 || res.status === 204, `status ${res.status}`);
    assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED);
    const allowed = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(',').map((h) => h.trim());
    assert.ok(allowed.includes('authorization'), `allow-headers: ${allowed}`);
    assert.ok(allowed.includes('last-event-id'), `allow-headers: ${allowed}`);
    const methods = (res.headers.get('access-control-allow-methods') ?? '').toUpperCase();
    assert.match(methods, /\bGET\b/);
  });

  it('every response says Vary: Origin, with an allowed origin, another one or none', async () => {
    // A cache in front of the relay must not serve one origin's CORS
    // headers (or their absence) to another.
    const t = newTenant();
    const token = await subscriber(t);
    const vary = (res) => (res.headers.get('vary') ?? '').split(',').map((v) => v.trim().toLowerCase());
    for (const origin of [ALLOWED, 'https://evil.example', undefined]) {
      const headers = origin ? { Origin: origin } : {};
      const responses = {
        stream: (await openStream(base, [channelOf(t)], { token, headers })).res,
        'stream refused': (await openStream(base, [channelOf(t)], { headers })).res,
        health: await fetch(`${base}/healthz`, { headers }),
        'unknown path': await fetch(`${base}/nope`, { headers }),
        publish: await fetch(`${base}/v1/publish`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: '{}' }),
        preflight: await fetch(`${base}/v1/stream`, { method: 'OPTIONS', headers: { ...headers, 'Access-Control-Request-Method': 'GET' } }),
      };
      for (const [name, res] of Object.entries(responses)) {
        if (!res.bodyUsed) await res.body?.cancel().catch(() => {});
        assert.ok(vary(res).includes('origin'), `${name} from ${origin ?? 'no origin'}: Vary ${res.headers.get('vary')}`);
      }
    }
  });

  it('a preflight from another origin grants nothing', async () => {
    const res = await fetch(`${base}/v1/stream`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://evil.example',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'authorization',
      },
    });
    await res.text();
    assert.equal(res.headers.get('access-control-allow-origin'), null);
  });
});
