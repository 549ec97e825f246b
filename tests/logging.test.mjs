// The worker's logs: one JSON object per line, and never any token text,
// whether the token came in the Authorization header or in ?access_token=,
// was valid or not, on success or on every kind of failure. Every request is
// logged with REQUEST_LOG=all; by default only refusals and failures are.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, logCollector, TEST_SECRET } from './support/worker.mjs';
import { token, subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';
import { subscribe, publish, streamUrl } from './support/sse.mjs';
import { openStream, rawStream } from './support/http.mjs';

let worker;
let base;
const logs = logCollector();

before(async () => {
  worker = await startWorker({ vars: { REQUEST_LOG: 'all' }, handleStructuredLogs: logs.handleStructuredLogs });
  base = worker.url;
});
after(async () => {
  await worker?.stop();
});

const now = () => Math.floor(Date.now() / 1000);

/** The parsed request log lines a collector has so far. */
const requestLines = (collector) =>
  collector.lines
    .map((l) => {
      try {
        return JSON.parse(l.message);
      } catch {
        return undefined;
      }
    })
    .filter((l) => l?.msg === 'request');
const requestLogs = () => requestLines(logs);

/** Waits (bounded) until at least `n` request log lines were written. */
async function waitForRequestLogs(n, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (requestLogs().length < n) {
    if (Date.now() > deadline) {
      assert.fail(`expected ${n} request log lines, got ${requestLogs().length}: ${JSON.stringify(logs.lines).slice(0, 2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('logs', () => {
  // Every token used below; none of their text may be logged.
  const secrets = [];
  let requests = 0;

  before(async () => {
    const t = newTenant();
    const a = channelOf(t);
    const other = channelOf(newTenant());
    const valid = await subscriber(t);
    const forged = await token({ tenant_id: t }, { secret: 'a-different-secret-0123456789abcdef' });
    const expired = await subscriber(t, { exp: now() - 3600 });
    const refresh = await subscriber(t, { token_type: 'refresh' });
    const pub = await publisher(t);
    secrets.push(valid, forged, expired, refresh, pub, TEST_SECRET);

    // Streams that open, with the token in the header and in the query.
    const viaHeader = subscribe(base, [a], { token: valid, types: ['scan.progress'] });
    const viaQuery = subscribe(base, [a], { token: valid, viaQuery: true, types: ['scan.progress'] });
    requests += 2;
    try {
      await Promise.all([viaHeader.opened(), viaQuery.opened()]);
      assert.equal((await publish(base, pub, { channel: a, event: 'scan.progress', data: { pct: 1 } })).status, 202);
      requests += 1;
      await Promise.all([viaHeader.waitForData(1), viaQuery.waitForData(1)]);
    } finally {
      viaHeader.close();
      viaQuery.close();
    }

    // Failures of every kind, with tokens in both places.
    const attempts = [
      { query: { access_token: forged } },
      { query: { access_token: expired } },
      { query: { access_token: refresh } },
      { token: forged },
      { token: expired, query: { access_token: valid } },
      { headers: { Authorization: `Basic ${Buffer.from(`user:${valid}`).toString('base64')}` } },
      { headers: { Authorization: `Api-Key ${valid}` } },
      { query: { access_token: [valid, valid].join('') } },
    ];
    for (const options of attempts) {
      const r = await openStream(base, [a], options);
      assert.equal(r.status, 401, r.text);
      requests += 1;
    }
    // Authorised, then refused for other reasons.
    for (const [channels, status] of [
      [[other], 403],
      [[`scan-progress:${t}`], 400],
      [[], 400],
    ]) {
      const r = await openStream(base, channels, { query: { access_token: valid } });
      assert.equal(r.status, status, r.text);
      requests += 1;
    }
    const badCursor = await openStream(base, [a], { query: { access_token: valid, lastEventId: '%%%' } });
    assert.equal(badCursor.status, 400, badCursor.text);
    requests += 1;
    // Tokens in the query of other endpoints, including one that takes none there.
    for (const path of [`/v1/publish?access_token=${pub}`, `/nowhere?access_token=${valid}`, `/healthz?access_token=${valid}`]) {
      const r = await fetch(new URL(path, base), {
        method: path.startsWith('/v1/publish') ? 'POST' : 'GET',
        headers: { 'Content-Type': 'application/json' },
        body: path.startsWith('/v1/publish') ? JSON.stringify({ channel: a, event: 'x.y', data: 1 }) : undefined,
      });
      await r.text();
      requests += 1;
    }
    const wrongScope = await publish(base, valid, { channel: a, event: 'x.y', data: 1 });
    assert.equal(wrongScope.status, 403);
    requests += 1;
    // A stream ticket: issued, redeemed, then replayed; none of its text logged.
    const issued = await fetch(new URL('/v1/tickets', base), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${valid}` },
      body: JSON.stringify({ channels: [a] }),
    });
    assert.equal(issued.status, 201);
    const { ticket } = await issued.json();
    secrets.push(ticket);
    requests += 1;
    const redeemed = await rawStream(`${base}/v1/stream?ticket=${ticket}`);
    requests += 1;
    try {
      await redeemed.opened();
    } finally {
      await redeemed.close();
    }
    const replayed = await openStream(base, [], { query: { ticket } });
    assert.equal(replayed.status, 401);
    requests += 1;
    // An API key the relay does not know.
    const apiKey = 'es_not-a-real-key-but-secret-all-the-same';
    secrets.push(apiKey);
    const refused = await publish(base, undefined, { channel: a, event: 'x.y', data: 1 }, { Authorization: `Api-Key ${apiKey}` });
    assert.equal(refused.status, 401);
    requests += 1;
    // A stream that the relay closes itself when its token expires.
    const shortLived = await subscriber(t, { exp: now() + 3 });
    secrets.push(shortLived);
    const s = await rawStream(`${streamUrl(base, [a])}&access_token=${shortLived}`);
    requests += 1;
    try {
      await s.opened();
      await s.end(10_000);
    } finally {
      await s.close();
    }
    await waitForRequestLogs(requests);
  });

  it('every log line is one JSON object with a level and a message', () => {
    assert.ok(logs.lines.length >= requests);
    for (const line of logs.lines) {
      assert.ok(!line.message.includes('\n'), `one line per entry: ${line.message}`);
      let parsed;
      assert.doesNotThrow(() => {
        parsed = JSON.parse(line.message);
      }, `not JSON: ${line.message}`);
      assert.equal(typeof parsed, 'object');
      assert.notEqual(parsed, null);
      assert.ok(!Array.isArray(parsed));
      assert.equal(typeof parsed.level, 'string', line.message);
      assert.equal(typeof parsed.msg, 'string', line.message);
    }
  });

  it('every request is logged with its method, path and status', () => {
    const byPath = requestLogs();
    assert.ok(byPath.length >= requests);
    for (const l of byPath) {
      assert.equal(typeof l.method, 'string');
      assert.equal(typeof l.path, 'string');
      assert.equal(typeof l.status, 'number');
    }
    assert.ok(byPath.some((l) => l.path === '/v1/stream' && l.status === 200));
    assert.ok(byPath.some((l) => l.path === '/v1/stream' && l.status === 401));
    assert.ok(byPath.some((l) => l.path === '/v1/publish' && l.status === 202));
  });

  it('no token text is ever logged, not even from ?access_token=', () => {
    const all = logs.lines.map((l) => l.message).join('\n');
    for (const secret of secrets) {
      assert.ok(!all.includes(secret), 'a whole token or the secret was logged');
      // Nor any part of one: payload or signature.
      for (const part of secret.split('.').slice(1)) {
        if (part.length >= 8) assert.ok(!all.includes(part), `a token part was logged: ${part}`);
      }
    }
    assert.doesNotMatch(all, /eyJ[A-Za-z0-9_-]{8,}/, 'something that looks like a JWT was logged');
    // A logged URL keeps no credential in its query.
    assert.doesNotMatch(all, /access_token=(?!\[redacted\])[^&"\s]/);
  });
});

describe('the request log by default', () => {
  const quiet = logCollector();
  let server;
  before(async () => {
    server = await startWorker({ handleStructuredLogs: quiet.handleStructuredLogs });
  });
  after(async () => {
    await server?.stop();
  });
  const lines = () => requestLines(quiet);

  it('has a line for each refusal and none for requests that succeeded', async () => {
    const t = newTenant();
    const a = channelOf(t);
    const stream = subscribe(server.url, [a], { token: await subscriber(t), types: ['scan.progress'] });
    try {
      await stream.opened();
      assert.equal((await publish(server.url, await publisher(t), { channel: a, event: 'scan.progress', data: { pct: 1 } })).status, 202);
      await stream.waitForData(1);
    } finally {
      stream.close();
    }
    const refused = await openStream(server.url, [a], { token: await token({ tenant_id: t }, { secret: 'a-different-secret-0123456789abcdef' }) });
    assert.equal(refused.status, 401, refused.text);
    const wrongScope = await publish(server.url, await subscriber(t), { channel: a, event: 'x.y', data: 1 });
    assert.equal(wrongScope.status, 403);
    const deadline = Date.now() + 10_000;
    while (lines().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // A moment more, for a success line that would come late.
    await new Promise((r) => setTimeout(r, 300));
    const logged = lines().map((l) => `${l.method} ${l.path} ${l.status}`);
    assert.deepEqual(logged.sort(), ['GET /v1/stream 401', 'POST /v1/publish 403'].sort(), JSON.stringify(logged));
  });
});
