// The typed client in real Chromium against the worker in workerd: in one
// page, and shared by the tabs of one origin (one stream per browser). The
// streams the relay opened are counted from its own request log lines.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startWorker, logCollector } from './support/worker.mjs';
import { publish } from './support/sse.mjs';
import { token, subscriber, publisher, newTenant, channelOf } from './support/tokens.mjs';
import { cursorOf } from './support/http.mjs';
import { launchBrowser, watchPage, BROWSER_SKIP } from './support/browser.mjs';
import { routeClient, CLIENT_PATH } from './support/client.mjs';

const VARS = { RETRY_MS: '500', JWT_LEEWAY_SECONDS: '0' };
const WAIT = { timeout: 10_000 };
const PAGE = '/client-test-page';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('typed client in Chromium', { skip: BROWSER_SKIP }, () => {
  let worker;
  let browser;
  let context;
  // An app of another origin that the relay lets in: a real server on
  // loopback, since Chromium lets only pages it loaded from loopback reach it.
  let app;
  let appOrigin;
  const logs = logCollector();

  before(async () => {
    app = http.createServer((req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>app</title>'));
    await new Promise((r) => app.listen(0, '127.0.0.1', r));
    appOrigin = `http://localhost:${app.address().port}`;
    [worker, browser] = await Promise.all([
      // REQUEST_LOG=all: the request log's stream opens are how these tests
      // count the streams the relay saw.
      startWorker({ vars: { ...VARS, ALLOWED_ORIGINS: appOrigin, REQUEST_LOG: 'all' }, handleStructuredLogs: logs.handleStructuredLogs }),
      launchBrowser(),
    ]);
    context = await browser.newContext();
    // A blank page on the relay's origin, and the client's modules, as a static server would serve them.
    await context.route(`**${PAGE}`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>client test</title>' }),
    );
    await routeClient(context);
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    await worker?.stop();
    await new Promise((r) => (app ? app.close(r) : r()));
  });

  /** The relay's log lines for `GET /v1/stream` so far, as {status}. */
  const streamsOpened = () =>
    logs.lines
      .map((l) => {
        try {
          return JSON.parse(l.message);
        } catch {
          return undefined;
        }
      })
      .filter((l) => l?.msg === 'request' && l.path === '/v1/stream');

  async function waitFor(predicate, what, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  it('runs in the page: events, token refresh, reset and refusal', async () => {
    const page = await context.newPage();
    const watch = watchPage(page);
    const requests = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/v1/stream') requests.push({ url, authorization: request.headers().authorization ?? null });
    });
    await page.goto(`${worker.url}${PAGE}`);
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const resetCursor = cursorOf([[channel, 50]]);
    const pub = await publisher(tenant);
    let minted = 0;
    await page.exposeFunction('mintToken', async () => {
      minted += 1;
      return subscriber(tenant, { exp: Math.floor(Date.now() / 1000) + 5 });
    });
    await page.exposeFunction('mintForeignToken', () => subscriber(newTenant()));
    await page.evaluate(
      async ({ channel, resetCursor, module }) => {
        const { EdgestreamClient } = await import(module);
        const log = { events: [], errors: [], resets: [], states: [] };
        window.clientLog = log;
        const live = new EdgestreamClient({
          url: location.origin,
          channels: [channel],
          getToken: () => window.mintToken(),
          refreshBeforeSeconds: 2,
          onStateChange: (s) => log.states.push(s),
          onError: (e) => log.errors.push(e),
        });
        live.on('scan.progress', (data, event) => log.events.push({ pct: data.pct, seq: event.seq, id: event.id }));
        const reset = new EdgestreamClient({
          url: location.origin,
          channels: [channel],
          getToken: () => window.mintToken(),
          lastEventId: resetCursor,
          onReset: (info) => log.resets.push(info.channels),
        });
        const refused = new EdgestreamClient({
          url: location.origin,
          channels: [channel],
          getToken: () => window.mintForeignToken(),
          onError: (e) => log.errors.push(e),
        });
        window.clients = [live, reset, refused];
      },
      { channel, resetCursor, module: `${CLIENT_PATH}/index.js` },
    );
    await page.waitForFunction(() => window.clientLog.states.includes('open'), null, WAIT);
    // Publish across a token refresh (tokens live 4-5 s, refreshed 2 s before expiry).
    let n = 0;
    const deadline = Date.now() + 4_000;
    while (Date.now() < deadline) {
      n += 1;
      await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: n } });
      await sleep(50);
    }
    await page.waitForFunction((n) => window.clientLog.events.length >= n, n, WAIT);
    const log = await page.evaluate(() => {
      for (const c of window.clients) c.close();
      return window.clientLog;
    });
    assert.deepEqual(log.events.map((e) => e.seq), Array.from({ length: n }, (_, i) => i + 1), 'every event once, in order');
    assert.ok(requests.every((r) => r.url.searchParams.get('access_token') === null), 'no token in a stream URL');
    assert.ok(requests.every((r) => /^Bearer /.test(r.authorization)), 'every stream request carries its token in the header');
    // Reconnects to refresh tokens (the reset client's first request starts from its made-up cursor).
    const resumed = requests.map((r) => r.url.searchParams.get('lastEventId')).filter((c) => c && c !== resetCursor);
    assert.ok(resumed.length >= 1, `reconnected to refresh the token (${requests.length} requests)`);
    for (const cursor of resumed) assert.ok(log.events.some((e) => e.id === cursor), `reconnected from a delivered cursor: ${cursor}`);
    assert.ok(minted >= 3, `tokens minted: ${minted}`);
    assert.deepEqual(log.resets, [[channel]]);
    const forbidden = log.errors.filter((e) => e.code === 'channel_forbidden');
    assert.equal(forbidden.length, 1, JSON.stringify(log.errors));
    assert.equal(forbidden[0].status, 403);
    assert.equal(forbidden[0].fatal, true);
    assert.ok(!log.errors.some((e) => e.code === 'token_expired'), JSON.stringify(log.errors));
    assert.deepEqual(watch.pageErrors, []);
    await page.close();
  });

  it("from another origin: the token in the header passes the relay's CORS preflight, and a refusal is still readable", async () => {
    const page = await context.newPage();
    const watch = watchPage(page);
    await page.goto(`${appOrigin}/app`);
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const [own, foreign] = await Promise.all([subscriber(tenant), subscriber(newTenant())]);
    await page.evaluate(
      async ({ relay, channel, own, foreign, module }) => {
        const { EdgestreamClient } = await import(module);
        const log = { seqs: [], errors: [], opens: 0 };
        window.clientLog = log;
        const options = { url: relay, channels: [channel], onError: (e) => log.errors.push(e), onOpen: () => (log.opens += 1) };
        const allowed = new EdgestreamClient({ ...options, getToken: () => own });
        allowed.on('scan.progress', (data, event) => log.seqs.push(event.seq));
        window.clients = [allowed, new EdgestreamClient({ ...options, getToken: () => foreign })];
      },
      { relay: worker.url, channel, own, foreign, module: `${CLIENT_PATH}/index.js` },
    );
    await page.waitForFunction(() => window.clientLog.opens === 1 && window.clientLog.errors.length === 1, null, WAIT);
    await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct: 1 } });
    await page.waitForFunction(() => window.clientLog.seqs.length === 1, null, WAIT);
    const log = await page.evaluate(() => {
      for (const c of window.clients) c.close();
      return window.clientLog;
    });
    assert.deepEqual(log.seqs, [1]);
    assert.deepEqual(log.errors.map((e) => [e.code, e.status, e.fatal]), [['channel_forbidden', 403, true]]);
    assert.deepEqual(watch.pageErrors, []);
    await page.close();
  });

  /**
   * Opens a tab on the relay's origin with a client that shares its stream
   * as `share`. The tab's log: its events' sequence numbers, what its
   * callbacks reported, and its role.
   */
  async function openTab({ tenant, channel, share, user = 'user-1' }) {
    const page = await context.newPage();
    const watch = watchPage(page);
    const tab = { page, watch, minted: 0 };
    await page.exposeFunction('mintToken', () => {
      tab.minted += 1;
      return subscriber(tenant, { sub: user });
    });
    await page.goto(`${worker.url}${PAGE}`);
    await page.evaluate(
      async ({ channel, share, module }) => {
        const { EdgestreamClient } = await import(module);
        const log = { seqs: [], opens: 0, errors: [], states: [], resets: [] };
        window.tabLog = log;
        const client = new EdgestreamClient({
          url: location.origin,
          channels: [channel],
          getToken: () => window.mintToken(),
          share,
          onOpen: () => (log.opens += 1),
          onReset: (info) => log.resets.push(info.channels),
          onError: (e) => log.errors.push(e),
          onStateChange: (s) => log.states.push(s),
        });
        client.on('scan.progress', (data, event) => log.seqs.push(event.seq));
        window.client = client;
      },
      { channel, share, module: `${CLIENT_PATH}/index.js` },
    );
    tab.log = () => page.evaluate(() => ({ ...window.tabLog, role: window.client.role, state: window.client.state }));
    return tab;
  }

  const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  it('tabs share one stream: every tab gets every event once, and closing the leader loses nothing', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const pub = await publisher(tenant);
    const send = async (pct) => {
      const r = await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } });
      assert.equal(r.status, 202, r.text);
    };
    const before = streamsOpened().length;

    const first = await openTab({ tenant, channel, share: 'user-1' });
    await waitFor(async () => (await first.log()).opens === 1, 'the first tab to open its stream');
    await send(1);
    const others = [await openTab({ tenant, channel, share: 'user-1' }), await openTab({ tenant, channel, share: 'user-1' })];
    const tabs = [first, ...others];
    // The tabs that joined get the current state from the leader, as a new stream would give it.
    await waitFor(async () => (await Promise.all(tabs.map((t) => t.log()))).every((l) => l.seqs.length === 1 && l.opens === 1), 'every tab open with event 1');
    assert.deepEqual((await Promise.all(tabs.map((t) => t.log()))).map((l) => l.role), ['leader', 'follower', 'follower']);
    assert.deepEqual(others.map((t) => t.minted), [0, 0], 'followers ask for no token');

    // Publish steadily; close the leader's tab in the middle.
    const total = 40;
    let closing;
    for (let pct = 2; pct <= total; pct++) {
      await send(pct);
      if (pct === 15) closing = first.page.close();
      await sleep(25);
    }
    await closing;
    await waitFor(async () => (await Promise.all(others.map((t) => t.log()))).every((l) => l.seqs.length >= total), `${total} events in both tabs`);
    await sleep(300);
    const logs = await Promise.all(others.map((t) => t.log()));
    for (const log of logs) {
      assert.deepEqual(log.seqs, range(1, total), 'every event once, in order, across the handover');
      assert.deepEqual(log.errors, []);
      assert.equal(log.state, 'open');
    }
    assert.deepEqual(logs.map((l) => l.role).sort(), ['follower', 'leader']);
    const successor = others[logs.findIndex((l) => l.role === 'leader')];
    assert.equal(successor.minted, 1, 'the new leader took a token for its stream');
    const opened = streamsOpened().slice(before);
    assert.deepEqual(opened.map((l) => l.status), [200, 200], 'the relay saw one stream, then one after the handover');

    // A tab that joins late gets the current state from the leader, not a stream of its own.
    const late = await openTab({ tenant, channel, share: 'user-1' });
    await waitFor(async () => (await late.log()).opens === 1 && (await late.log()).seqs.length === 1, 'the late tab in step');
    assert.deepEqual((await late.log()).seqs, [total], 'the current state: the latest event');
    // Another user in the same browser does not share this user's stream.
    const stranger = await openTab({ tenant, channel, share: 'user-2', user: 'user-2' });
    await waitFor(async () => (await stranger.log()).opens === 1, "the other user's own stream");
    assert.equal((await stranger.log()).role, 'leader');
    assert.equal(stranger.minted, 1);
    assert.deepEqual(streamsOpened().slice(before).map((l) => l.status), [200, 200, 200]);
    for (const t of [...others, late, stranger]) assert.deepEqual(t.watch.pageErrors, []);
    await Promise.all([...others, late, stranger].map((t) => t.page.close()));
  });

  it('followers see what the leader sees: a kick, then a revocation that closes every tab with one refused request', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant);
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push(await openTab({ tenant, channel, share: 'carol', user: 'carol' }));
    await waitFor(async () => (await Promise.all(tabs.map((t) => t.log()))).every((l) => l.opens === 1), 'three tabs open');
    const before = streamsOpened().length;

    const admin = await token({ scope: 'events:admin events:platform' });
    const res = await fetch(new URL('/v1/admin/kick', worker.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ tenant, user: 'carol', ttl_seconds: 60 }),
    });
    assert.equal(res.status, 200, await res.text());
    await waitFor(async () => (await Promise.all(tabs.map((t) => t.log()))).every((l) => l.state === 'closed'), 'every tab closed');
    for (const log of await Promise.all(tabs.map((t) => t.log()))) {
      assert.deepEqual(
        log.errors.map((e) => [e.code, e.fatal]),
        [['kicked', false], ['revoked', true]],
        'kicked, then refused for good',
      );
      assert.ok(log.errors[0].retryInMs >= 500, `the kick is retried after the relay's retry: (${log.errors[0].retryInMs} ms)`);
      assert.equal(log.errors[1].status, 403);
    }
    await sleep(1_500);
    assert.deepEqual(streamsOpened().slice(before).map((l) => l.status), [403], 'one refused reconnect, for all three tabs');
    assert.equal(tabs.reduce((n, t) => n + t.minted, 0), 2, 'two tokens in all: the first stream and the refused one');
    for (const t of tabs) assert.deepEqual(t.watch.pageErrors, []);
    await Promise.all(tabs.map((t) => t.page.close()));
  });
});
