// Real Chromium against the local worker: the demo page with the browser's
// own EventSource. The typed client in Chromium is in client-browser.test.mjs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startWorker, logCollector } from './support/worker.mjs';
import { publish } from './support/sse.mjs';
import { publisher, newTenant, channelOf } from './support/tokens.mjs';
import { cursorOf } from './support/http.mjs';
import { launchBrowser, artifactPath, watchPage, BROWSER_SKIP } from './support/browser.mjs';

const VARS = { DEV_MODE: '1', RETRY_MS: '500', JWT_LEEWAY_SECONDS: '0' };
const WAIT = { timeout: 10_000 };

describe('in Chromium', { skip: BROWSER_SKIP }, () => {
  let worker;
  let persistPath;
  let browser;
  let context;
  const startAt = (port) =>
    startWorker({ vars: VARS, persistPath, port, handleStructuredLogs: logCollector().handleStructuredLogs });

  before(async () => {
    persistPath = await mkdtemp(path.join(tmpdir(), 'edgestream-browser-'));
    [worker, browser] = await Promise.all([startAt(0), launchBrowser()]);
    context = await browser.newContext({ viewport: { width: 1100, height: 860 } });
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    await worker?.stop();
    if (persistPath) await rm(persistPath, { recursive: true, force: true });
  });

  /**
   * Opens the demo page and connects to a channel of a new tenant, with a
   * stream ticket (the page's default) or the token in the URL.
   */
  async function openDemo(mode = 'ticket') {
    const page = await context.newPage();
    const watch = watchPage(page);
    // Each stream request as sent on the wire: its URL and Last-Event-ID header.
    const streamRequests = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/v1/stream' && request.resourceType() === 'eventsource') {
        streamRequests.push(request.allHeaders().then((h) => ({ url, lastEventId: h['last-event-id'] ?? null })));
      }
    });
    const sentStreams = () => Promise.all(streamRequests);
    await page.goto(`${worker.url}/demo`);
    assert.equal(await page.isChecked('#auth-ticket'), true, 'tickets are the default');
    if (mode === 'token') await page.check('#auth-token');
    const tenant = await page.inputValue('#tenant');
    const channel = await page.inputValue('#channel');
    assert.equal(channel, `scan-progress:${tenant}:demo`);
    await page.click('#connect');
    await page.waitForSelector('#state[data-state="open"]', WAIT);
    await page.waitForSelector('#log tr[data-event="stream-open"]', WAIT);
    assert.equal(await page.isDisabled('#auth-token'), true, 'the credential choice is locked while connected');
    return { page, watch, tenant, channel, sentStreams };
  }

  /** Restarts the runtime on the same port and storage: every stream is cut. */
  async function restartWorker() {
    const port = Number(new URL(worker.url).port);
    await worker.stop();
    worker = await startAt(port);
  }

  /** The ids of the event rows in the page's log, oldest first. */
  const loggedIds = (page) =>
    page.$$eval('#log tr[data-id]', (rows) => rows.map((r) => r.dataset.id).reverse());

  it('the demo connects with a ticket and events published over HTTP move the bar to 100%', async () => {
    const { page, watch, tenant, channel, sentStreams } = await openDemo();
    const [first] = await sentStreams();
    assert.match(first.url.searchParams.get('ticket'), /^[0-9a-f]{64}$/);
    assert.equal(first.url.searchParams.get('access_token'), null, 'no token in the stream URL');
    assert.equal(await page.textContent('#tickets'), '1');
    const pub = await publisher(tenant);
    for (let pct = 0; pct <= 100; pct += 20) {
      const r = await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } });
      assert.equal(r.status, 202, r.text);
    }
    await page.waitForSelector('#bar[aria-valuenow="100"]', WAIT);
    assert.equal(await page.textContent('#pct'), '100');
    assert.equal(await page.getAttribute('#bar', 'data-complete'), '');
    const ids = await loggedIds(page);
    assert.deepEqual(ids, [1, 2, 3, 4, 5, 6].map((n) => cursorOf([[channel, n]])));
    assert.equal(await page.textContent('#last-id'), ids.at(-1));

    // The page's own publish form works too.
    await page.fill('#publish-event', 'scan.completed');
    await page.fill('#publish-data', '{"findings": 3}');
    await page.click('#publish');
    await page.waitForSelector('#log tr[data-event="scan.completed"]', WAIT);
    assert.match(await page.textContent('#publish-status'), /Published scan\.completed as sequence 7/);
    assert.equal(await page.isHidden('#error'), true);
    assert.deepEqual(watch.pageErrors, []);
    await page.screenshot({ path: artifactPath('demo.png'), fullPage: true });
    await page.close();
  });

  it("with the token in the URL, the browser's EventSource resumes after a server-side cut with every event exactly once", async () => {
    const { page, watch, tenant, channel, sentStreams } = await openDemo('token');
    assert.equal(await page.isHidden('#tickets'), true);
    const pub = await publisher(tenant);
    for (let pct = 10; pct <= 30; pct += 10) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } });
    await page.waitForSelector('#bar[aria-valuenow="30"]', WAIT);
    const beforeCut = (await loggedIds(page)).at(-1);
    assert.equal(beforeCut, cursorOf([[channel, 3]]));

    await restartWorker();
    for (let pct = 40; pct <= 100; pct += 20) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } });

    await page.waitForSelector('#bar[aria-valuenow="100"]', WAIT);
    await page.waitForSelector('#state[data-state="open"]', WAIT);
    const ids = await loggedIds(page);
    assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7].map((n) => cursorOf([[channel, n]])), 'each event once, in order');
    assert.equal(await page.textContent('#connections'), '2');
    const streams = await sentStreams();
    assert.ok(streams.every((r) => r.url.searchParams.get('access_token')), 'every request has the token in its URL');
    const sent = streams.map((r) => r.lastEventId);
    assert.equal(sent[0], null, 'the first request has no Last-Event-ID');
    assert.ok(sent.includes(beforeCut), `a reconnect sent Last-Event-ID ${beforeCut}: ${JSON.stringify(sent)}`);
    assert.deepEqual(watch.pageErrors, []);
    await page.close();
  });

  it('with tickets, a server-side cut reconnects with a new ticket and the cursor, with every event exactly once', async () => {
    const { page, watch, tenant, channel, sentStreams } = await openDemo('ticket');
    const pub = await publisher(tenant);
    for (let pct = 10; pct <= 30; pct += 10) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } });
    await page.waitForSelector('#bar[aria-valuenow="30"]', WAIT);
    const beforeCut = (await loggedIds(page)).at(-1);
    assert.equal(beforeCut, cursorOf([[channel, 3]]));

    await restartWorker();
    for (let pct = 40; pct <= 100; pct += 20) await publish(worker.url, pub, { channel, event: 'scan.progress', data: { pct } });

    await page.waitForSelector('#bar[aria-valuenow="100"]', WAIT);
    await page.waitForSelector('#state[data-state="open"]', WAIT);
    const ids = await loggedIds(page);
    assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7].map((n) => cursorOf([[channel, n]])), 'each event once, in order');
    assert.equal(await page.textContent('#connections'), '2');

    const streams = await sentStreams();
    assert.equal(streams.length, 2, `one request per connection: ${streams.map((r) => r.url.search).join(' ')}`);
    const tickets = streams.map((r) => r.url.searchParams.get('ticket'));
    assert.ok(tickets.every((t) => /^[0-9a-f]{64}$/.test(t)), `a ticket in every request: ${tickets}`);
    assert.notEqual(tickets[1], tickets[0], 'the reconnect used a new ticket');
    assert.equal(await page.textContent('#tickets'), '2');
    for (const r of streams) {
      assert.equal(r.url.searchParams.get('access_token'), null, 'no token in a stream URL');
      // Only the page opens streams: the browser never retried a spent ticket by itself.
      assert.equal(r.lastEventId, null, 'no Last-Event-ID header, so no retry by the EventSource itself');
    }
    assert.equal(streams[0].url.searchParams.get('lastEventId'), null);
    assert.equal(streams[1].url.searchParams.get('lastEventId'), beforeCut, 'the reconnect resumes from the cursor');
    assert.equal(await page.isHidden('#error'), true);
    assert.deepEqual(watch.pageErrors, []);
    await page.close();
  });

  for (const mode of ['ticket', 'token']) {
    it(`a channel of another tenant shows a clear error instead of hanging (${mode})`, async () => {
      const page = await context.newPage();
      const watch = watchPage(page);
      await page.goto(`${worker.url}/demo`);
      await page.check(`#auth-${mode}`);
      const foreign = channelOf(newTenant());
      await page.fill('#channel', foreign);
      await page.click('#connect');
      await page.waitForSelector('#error:not([hidden])', WAIT);
      const error = await page.textContent('#error');
      assert.match(error, /403 channel_forbidden/);
      assert.match(error, /may not access channel/);
      assert.equal(await page.getAttribute('#state', 'data-state'), 'failed');
      assert.equal(await page.isDisabled('#disconnect'), true);
      assert.equal(await page.isEnabled(`#auth-${mode}`), true, 'the credential can be changed again');
      assert.deepEqual(watch.pageErrors, []);
      if (mode === 'ticket') await page.screenshot({ path: artifactPath('demo-error.png') });
      await page.close();
    });
  }
});
