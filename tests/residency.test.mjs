// Data residency (docs/deploy.md): a tenant's objects live in the Durable
// Object jurisdiction the configuration names; a credential that names
// another is refused before any object is touched; a bad setting fails
// closed. workerd outside Cloudflare throws for every jurisdiction
// ("Jurisdiction restrictions are not implemented in workerd."), so for a
// tenant placed in one these tests see the placement attempted and the
// request failing closed, never served from the namespace outside it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, logCollector } from './support/worker.mjs';
import { token, subscriber, publisher, platformPublisher, newTenant, channelOf } from './support/tokens.mjs';
import { publish, subscribe } from './support/sse.mjs';
import { assertProblem, openStream } from './support/http.mjs';

const EU_TENANT = newTenant();
const UNPLACED = newTenant();

const post = (base, route, credential, body) =>
  fetch(new URL(route, base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(credential ? { Authorization: credential } : {}) },
    body: JSON.stringify(body),
  });

const event = (channel, data = { n: 1 }) => ({ channel, event: 'scan.progress', data });

describe('a deployment that places one tenant in "eu"', () => {
  let worker;
  const logs = logCollector();
  before(async () => {
    worker = await startWorker({
      vars: { TENANT_JURISDICTIONS: `${EU_TENANT}=eu` },
      handleStructuredLogs: logs.handleStructuredLogs,
    });
  });
  after(() => worker?.stop());

  /** The events the channel's object outside any jurisdiction holds. */
  async function unplacedHead(channel) {
    const namespace = await worker.mf.getDurableObjectNamespace('CHANNELS', 'edgestream');
    const res = await namespace.get(namespace.idFromName(channel)).fetch('http://object/stats');
    assert.equal(res.status, 200);
    const stats = await res.json();
    assert.ok('last_id' in stats, JSON.stringify(stats));
    return stats.last_id ?? 0;
  }

  it('a tenant the configuration does not place works as before', async () => {
    const channel = channelOf(UNPLACED);
    const stream = subscribe(worker.url, [channel], { token: await subscriber(UNPLACED), types: ['scan.progress'] });
    try {
      await stream.opened();
      const res = await publish(worker.url, await publisher(UNPLACED), { events: [event(channel, { n: 7 })] });
      assert.equal(res.status, 202, res.text);
      assert.equal(res.body.results[0].id, 1);
      await stream.waitForData(1, 10_000);
      assert.deepEqual(JSON.parse(stream.data()[0].data), { n: 7 });
      // The object outside any jurisdiction holds it: the probe the other
      // tests read to show that nothing landed there sees real events.
      assert.equal(await unplacedHead(channel), 1);
    } finally {
      stream.close();
    }
  });

  it('a token claiming a jurisdiction for a tenant kept outside any is refused, and nothing is written', async () => {
    const channel = channelOf(UNPLACED);
    const claimed = { jurisdiction: 'eu' };
    const refused = await publish(worker.url, await publisher(UNPLACED, claimed), { events: [event(channel)] });
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.body.code, 'jurisdiction_mismatch');
    assert.equal(await unplacedHead(channel), 0, 'the refused publish stored nothing');
    const r = await openStream(worker.url, [channel], { token: await subscriber(UNPLACED, claimed) });
    await assertProblem(r.res, 403, 'jurisdiction_mismatch', { text: r.text });
    const ticket = await post(worker.url, '/v1/tickets', `Bearer ${await subscriber(UNPLACED, claimed)}`, { channels: [channel] });
    await assertProblem(ticket, 403, 'jurisdiction_mismatch');
    const stats = await fetch(new URL(`/v1/channels/${encodeURIComponent(channel)}`, worker.url), {
      headers: { Authorization: `Bearer ${await subscriber(UNPLACED, claimed)}` },
    });
    await assertProblem(stats, 403, 'jurisdiction_mismatch');
  });

  it('a claim naming no jurisdiction the platform has, or the wrong case, is refused without being echoed', async () => {
    const channel = channelOf(EU_TENANT);
    for (const claim of ['mars', 'EU', '', 'eu ']) {
      const r = await openStream(worker.url, [channel], { token: await subscriber(EU_TENANT, { jurisdiction: claim }) });
      const problem = await assertProblem(r.res, 403, 'jurisdiction_mismatch', { text: r.text });
      if (claim.trim()) assert.ok(!problem.detail.includes(`"${claim}"`), problem.detail);
    }
    const wrong = await publish(worker.url, await publisher(EU_TENANT, { jurisdiction: 'fedramp' }), { events: [event(channel)] });
    assert.equal(wrong.status, 403, wrong.text);
    assert.equal(wrong.body.code, 'jurisdiction_mismatch');
    assert.match(wrong.body.detail, /"fedramp".*"eu"/);
  });

  it('a claim of the wrong type is an invalid token', async () => {
    const r = await openStream(worker.url, [channelOf(EU_TENANT)], { token: await subscriber(EU_TENANT, { jurisdiction: ['eu'] }) });
    await assertProblem(r.res, 401, 'invalid_token', { text: r.text, error: 'invalid_token' });
  });

  it('the placed tenant is reached only in "eu": here that fails closed, and the unplaced namespace stays empty', async () => {
    const channel = channelOf(EU_TENANT);
    const before = logs.lines.length;
    for (const credential of [await publisher(EU_TENANT), await publisher(EU_TENANT, { jurisdiction: 'eu' })]) {
      const res = await publish(worker.url, credential, { events: [event(channel)] });
      assert.equal(res.status, 503, res.text);
      assert.equal(res.body.code, 'unavailable');
    }
    const r = await openStream(worker.url, [channel], { token: await subscriber(EU_TENANT) });
    await assertProblem(r.res, 503, 'unavailable', { text: r.text });
    const attempts = logs.lines.slice(before).filter((l) => l.message.includes('"msg":"jurisdiction unavailable"'));
    assert.ok(attempts.length >= 3, `placement attempted: ${logs.lines.slice(before).map((l) => l.message).join('\n')}`);
    for (const line of attempts) assert.match(line.message, /eu: .*Jurisdiction restrictions are not implemented in workerd/);
    assert.equal(await unplacedHead(channel), 0, 'nothing fell back to the namespace outside the jurisdiction');
  });

  it('platform credentials acting on a tenant land in that tenant\'s jurisdiction', async () => {
    const placed = await publish(worker.url, await platformPublisher(), { events: [event(channelOf(EU_TENANT))] });
    assert.equal(placed.status, 503, placed.text);
    assert.equal(placed.body.code, 'unavailable');
    // A batch across tenants is refused whole when one tenant's place is refused.
    const other = channelOf(UNPLACED);
    const mixed = await publish(worker.url, await token({ scope: 'events:publish events:platform', jurisdiction: 'eu' }), {
      events: [event(other), event(channelOf(EU_TENANT))],
    });
    assert.equal(mixed.status, 403, mixed.text);
    assert.equal(mixed.body.code, 'jurisdiction_mismatch');
    assert.equal(await unplacedHead(other), 0);
    const unplaced = await publish(worker.url, await platformPublisher(), { events: [event(other)] });
    assert.equal(unplaced.status, 202, unplaced.text);

    const admin = `Bearer ${await token({ scope: 'events:admin events:platform' })}`;
    const kickPlaced = await post(worker.url, '/v1/admin/kick', admin, { tenant: EU_TENANT, user: 'alice', ttl_seconds: 60 });
    await assertProblem(kickPlaced, 503, 'unavailable');
    const kickUnplaced = await post(worker.url, '/v1/admin/kick', admin, { tenant: UNPLACED, user: 'alice', ttl_seconds: 60 });
    assert.equal(kickUnplaced.status, 200, await kickUnplaced.text());
  });

  it('tickets: unchanged outside a jurisdiction, and one naming a jurisdiction is looked up only there', async () => {
    const channel = channelOf(UNPLACED);
    const issued = await post(worker.url, '/v1/tickets', `Bearer ${await subscriber(UNPLACED)}`, { channels: [channel] });
    assert.equal(issued.status, 201);
    const { ticket } = await issued.json();
    assert.match(ticket, /^[0-9a-f]{64}$/);
    const opened = await openStream(worker.url, [], { query: { ticket } });
    assert.equal(opened.status, 200, opened.text);

    const placed = await post(worker.url, '/v1/tickets', `Bearer ${await subscriber(EU_TENANT)}`, { channels: [channelOf(EU_TENANT)] });
    await assertProblem(placed, 503, 'unavailable');
    const named = await openStream(worker.url, [], { query: { ticket: `eu.${'a'.repeat(64)}` } });
    await assertProblem(named.res, 503, 'unavailable', { text: named.text });
    const unknown = await openStream(worker.url, [], { query: { ticket: `mars.${'a'.repeat(64)}` } });
    await assertProblem(unknown.res, 401, 'invalid_token', { text: unknown.text, error: 'invalid_token' });
  });
});

describe('residency settings fail closed', () => {
  for (const [what, vars] of [
    ['an unknown default jurisdiction', { DEFAULT_JURISDICTION: 'europe' }],
    ['a tenant map naming an unknown jurisdiction', { TENANT_JURISDICTIONS: `${EU_TENANT}=mars` }],
  ]) {
    it(`${what}: every request is 503 and the log names the variable`, async () => {
      const logs = logCollector();
      const worker = await startWorker({ vars, handleStructuredLogs: logs.handleStructuredLogs });
      try {
        const res = await publish(worker.url, await publisher(UNPLACED), { events: [event(channelOf(UNPLACED))] });
        assert.equal(res.status, 503, res.text);
        assert.equal(res.body.code, 'unavailable');
        const variable = Object.keys(vars)[0];
        assert.ok(
          logs.lines.some((l) => l.message.includes('"msg":"configuration"') && l.message.includes(variable)),
          logs.lines.map((l) => l.message).join('\n'),
        );
      } finally {
        await worker.stop();
      }
    });
  }
});
