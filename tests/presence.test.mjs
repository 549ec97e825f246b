// Presence on channels whose prefix PRESENCE_PREFIXES names: presence.joined
// and presence.left events, coalesced so that a second tab or a quick
// reconnect does not flap, and GET /v1/channels/{channel}/presence.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startWorker, logCollector } from './support/worker.mjs';
import { subscriber, publisher, token, newTenant, channelOf } from './support/tokens.mjs';
import { publish, streamUrl } from './support/sse.mjs';
import { rawStream, eventsOf, assertProblem } from './support/http.mjs';

const PRESENCE = ['presence.joined', 'presence.left'];
/** The grace period a subject's last stream starts (core/src/presence.rs). */
const GRACE_MS = 5000;

let worker;
before(async () => {
  worker = await startWorker({
    vars: { PRESENCE_PREFIXES: 'room, doc' },
    handleStructuredLogs: logCollector().handleStructuredLogs,
  });
});
after(async () => {
  await worker?.stop();
});

/** A raw stream of `channel` for a subscriber whose `sub` is `subject` (none when null). */
async function open(channel, subject) {
  const tenant = channel.split(':')[1];
  const token = await subscriber(tenant, { sub: subject ?? undefined });
  const s = await rawStream(streamUrl(worker.url, [channel]), { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(s.res.status, 200);
  await s.opened();
  return s;
}

/** The presence events a stream has read, as {id, type, subject, streams}. */
const presenceOf = (s) =>
  eventsOf(s.text)
    .filter((e) => PRESENCE.includes(e.event))
    .map((e) => ({ id: e.id, type: e.event, ...JSON.parse(e.data) }));

async function presence(channel, tenant = channel.split(':')[1]) {
  return fetch(new URL(`/v1/channels/${encodeURIComponent(channel)}/presence`, worker.url), {
    headers: { Authorization: `Bearer ${await subscriber(tenant)}` },
  });
}

async function roster(channel) {
  const res = await presence(channel);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text);
}

/** Polls the presence endpoint until `predicate(body)` holds (bounded, generous). */
async function rosterUntil(channel, predicate, what) {
  const deadline = Date.now() + 30_000;
  let body;
  while (Date.now() < deadline) {
    body = await roster(channel);
    if (predicate(body)) return body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; last ${JSON.stringify(body)}`);
}

const streamsOf = (body, subject) => body.subjects.find((s) => s.subject === subject)?.streams;

/** Publishes a marker event and waits for `observer` to read it: everything published before it has arrived too. */
async function marker(observer, channel, name, base = worker.url) {
  const tenant = channel.split(':')[1];
  const r = await publish(base, await publisher(tenant), { channel, event: 'test.marker', data: { name } });
  assert.equal(r.status, 202, r.text);
  await observer.until((t) => eventsOf(t).some((e) => e.event === 'test.marker' && JSON.parse(e.data).name === name), 30_000, `marker ${name}`);
}

describe('presence', () => {
  it('joins, coalesces tabs and reconnects, leaves after the grace period, and lists subjects', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'lobby', 'room');
    const observer = await open(channel, 'watcher');
    const streams = [];
    try {
      const alice1 = await open(channel, 'alice');
      streams.push(alice1);
      let bob = await open(channel, 'bob');
      streams.push(bob);
      await observer.until(
        () => ['alice', 'bob'].every((s) => presenceOf(observer).some((e) => e.type === 'presence.joined' && e.subject === s)),
        30_000,
        'alice and bob joining',
      );
      for (const e of presenceOf(observer)) {
        assert.equal(e.streams, 1, JSON.stringify(e));
        assert.match(e.id, /^room%3A.*:[0-9]+$/, 'presence events are numbered events of the channel');
      }

      // A second tab: counted, not announced again.
      const alice2 = await open(channel, 'alice');
      streams.push(alice2);
      let body = await roster(channel);
      assert.deepEqual(body, {
        channel,
        subjects: [
          { subject: 'alice', streams: 2 },
          { subject: 'bob', streams: 1 },
          { subject: 'watcher', streams: 1 },
        ],
        truncated: false,
        anonymous: 0,
      });

      // Closing one of two tabs does not leave.
      await alice1.close();
      await rosterUntil(channel, (b) => streamsOf(b, 'alice') === 1, 'alice down to one stream');

      // A quick reconnect: bob's stream closes and another opens at once.
      await bob.close();
      bob = await open(channel, 'bob');
      streams.push(bob);
      await rosterUntil(channel, (b) => streamsOf(b, 'bob') === 1, 'bob back');

      // Closing the last tab leaves, after the grace period. Bob's grace
      // period, had it not been cancelled, would have ended before alice's.
      const closedAt = Date.now();
      await alice2.close();
      await observer.until(
        () => presenceOf(observer).some((e) => e.type === 'presence.left' && e.subject === 'alice'),
        30_000,
        'alice leaving',
      );
      assert.ok(Date.now() - closedAt >= GRACE_MS - 500, 'alice left before the grace period was over');
      await marker(observer, channel, 'after-alice-left');

      const seen = presenceOf(observer).map(({ type, subject, streams: n }) => [type, subject, n]);
      assert.deepEqual(
        seen.filter(([, subject]) => subject !== 'watcher'),
        [
          ['presence.joined', 'alice', 1],
          ['presence.joined', 'bob', 1],
          ['presence.left', 'alice', 0],
        ],
        'one join per subject, no leave for a second tab or a reconnect',
      );
      assert.deepEqual(seen.filter(([type]) => type === 'presence.left'), [['presence.left', 'alice', 0]]);

      body = await roster(channel);
      assert.deepEqual(body.subjects, [
        { subject: 'bob', streams: 1 },
        { subject: 'watcher', streams: 1 },
      ]);
    } finally {
      await Promise.all([observer, ...streams].map((s) => s.close()));
    }
  });

  it('are events in history, not current state: a late stream gets no earlier presence event first, a resume replays them', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'doc-1', 'doc');
    const alice = await open(channel, 'alice');
    let late;
    let resumed;
    try {
      await alice.until((t) => eventsOf(t).some((e) => e.event === 'presence.joined'), 30_000, 'own join');
      const [aliceJoined] = presenceOf(alice);
      assert.deepEqual([aliceJoined.subject, aliceJoined.streams], ['alice', 1]);

      late = await open(channel, 'late');
      await late.until(() => presenceOf(late).some((e) => e.subject === 'late'), 30_000, 'late joining');
      assert.deepEqual(presenceOf(late).map((e) => e.subject), ['late'], 'no state of presence on connect');

      // Resuming from before alice joined replays both joins from history.
      const token = await subscriber(tenant, { sub: 'resumer' });
      const cursor = aliceJoined.id.replace(/:[0-9]+$/, ':0');
      resumed = await rawStream(streamUrl(worker.url, [channel]), {
        headers: { Authorization: `Bearer ${token}`, 'Last-Event-ID': cursor },
      });
      await resumed.until(() => presenceOf(resumed).some((e) => e.subject === 'resumer'), 30_000, 'resumer joining');
      assert.deepEqual(
        presenceOf(resumed).map((e) => e.subject),
        ['alice', 'late', 'resumer'],
      );
    } finally {
      await Promise.all([alice, late, resumed].filter(Boolean).map((s) => s.close()));
    }
  });

  it('a kicked user leaves after the grace period', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'kick', 'room');
    const observer = await open(channel, 'watcher');
    const alice = await open(channel, 'alice');
    try {
      await observer.until(() => presenceOf(observer).some((e) => e.subject === 'alice'), 30_000, 'alice joining');
      const admin = await token({ scope: 'events:admin events:platform' });
      const kicked = await fetch(new URL('/v1/admin/kick', worker.url), {
        method: 'POST',
        headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ tenant, user: 'alice', ttl_seconds: 60 }),
      });
      assert.equal(kicked.status, 200, await kicked.text());
      await observer.until(
        () => presenceOf(observer).some((e) => e.type === 'presence.left' && e.subject === 'alice'),
        30_000,
        'alice leaving',
      );
      assert.deepEqual((await roster(channel)).subjects, [{ subject: 'watcher', streams: 1 }]);
    } finally {
      await Promise.all([observer.close(), alice.close()]);
    }
  });

  it("refuses a publisher's presence.* events on a channel with presence, the whole batch", async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'forged', 'room');
    const pub = await publisher(tenant);
    const batch = {
      events: [
        { channel, event: 'chat.message', data: { text: 'hi' } },
        { channel, event: 'presence.left', data: { subject: 'alice', streams: 0 } },
      ],
    };
    const res = await fetch(new URL('/v1/publish', worker.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${pub}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(batch),
    });
    const problem = await assertProblem(res, 400, 'invalid_body');
    assert.match(problem.detail, /presence\./);
    const stats = await fetch(new URL(`/v1/channels/${encodeURIComponent(channel)}`, worker.url), {
      headers: { Authorization: `Bearer ${await subscriber(tenant)}` },
    });
    assert.equal((await stats.json()).last_id, null, 'nothing of the batch was stored');
  });

  it('counts a stream without a subject but does not list it', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'anon', 'room');
    const anonymous = await open(channel, null);
    const named = await open(channel, 'named');
    try {
      const body = await rosterUntil(channel, (b) => b.anonymous === 1 && streamsOf(b, 'named') === 1, 'both counted');
      assert.deepEqual(body.subjects, [{ subject: 'named', streams: 1 }]);
      await named.until(() => presenceOf(named).length > 0, 30_000, 'own join');
      assert.deepEqual(presenceOf(anonymous).map((e) => e.subject), ['named']);
    } finally {
      await Promise.all([anonymous.close(), named.close()]);
    }
  });

  it('is for the channel’s tenant only: another tenant gets 403', async () => {
    const channel = channelOf(newTenant(), 'lobby', 'room');
    await assertProblem(await presence(channel, newTenant()), 403, 'channel_forbidden');
    const res = await fetch(new URL(`/v1/channels/${encodeURIComponent(channel)}/presence`, worker.url));
    await assertProblem(res, 401, 'missing_credentials');
  });

  it('a channel whose prefix is not listed has no presence events, and its endpoint is 404 presence_disabled', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'plain', 'scan-progress');
    const observer = await open(channel, 'watcher');
    const other = await open(channel, 'alice');
    try {
      await marker(observer, channel, 'plain');
      assert.deepEqual(presenceOf(observer), []);
      // Elsewhere presence.* are ordinary event types, and current state.
      const own = await publish(worker.url, await publisher(tenant), { channel, event: 'presence.joined', data: { subject: 'x' } });
      assert.equal(own.status, 202, own.text);
      const problem = await assertProblem(await presence(channel), 404, 'presence_disabled');
      assert.match(problem.detail, /scan-progress/);
      // Stats of the same channel still answer.
      const stats = await fetch(new URL(`/v1/channels/${encodeURIComponent(channel)}`, worker.url), {
        headers: { Authorization: `Bearer ${await subscriber(tenant)}` },
      });
      assert.equal(stats.status, 200);
      assert.equal((await stats.json()).streams, 2);
    } finally {
      await Promise.all([observer.close(), other.close()]);
    }
  });
});

describe('presence with shards', () => {
  let sharded;
  before(async () => {
    sharded = await startWorker({
      vars: { PRESENCE_PREFIXES: 'room', SHARD_SUBSCRIBERS: '2' },
      handleStructuredLogs: logCollector().handleStructuredLogs,
    });
  });
  after(() => sharded?.stop());

  it('streams on shards join, count and leave like the channel’s own', async () => {
    const tenant = newTenant();
    const channel = channelOf(tenant, 'big', 'room');
    const auth = async (sub) => ({ Authorization: `Bearer ${await subscriber(tenant, { sub })}` });
    const openOn = async (sub) => {
      const s = await rawStream(streamUrl(sharded.url, [channel]), { headers: await auth(sub) });
      assert.equal(s.res.status, 200);
      await s.opened();
      return s;
    };
    const get = async (suffix) => {
      const res = await fetch(new URL(`/v1/channels/${encodeURIComponent(channel)}${suffix}`, sharded.url), {
        headers: await auth('reader'),
      });
      assert.equal(res.status, 200);
      return res.json();
    };
    const until = async (predicate, what) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const body = await get('/presence');
        if (predicate(body)) return body;
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}: ${JSON.stringify(body)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    // The channel serves two streams itself; the rest go to shards.
    const observer = await openOn('watcher');
    const alice1 = await openOn('alice');
    const streams = [observer, alice1];
    try {
      const carol = await openOn('carol');
      streams.push(carol);
      const alice2 = await openOn('alice');
      streams.push(alice2);
      assert.equal((await get('')).streams, 4);
      await observer.until(() => presenceOf(observer).some((e) => e.subject === 'carol'), 30_000, 'carol joining from a shard');
      await until((b) => streamsOf(b, 'alice') === 2 && streamsOf(b, 'carol') === 1, 'shard streams counted');

      // Alice's stream on the channel closes; the one on a shard keeps her.
      await alice1.close();
      await until((b) => streamsOf(b, 'alice') === 1, 'alice down to her shard stream');
      await carol.close();
      await observer.until(
        () => presenceOf(observer).some((e) => e.type === 'presence.left' && e.subject === 'carol'),
        30_000,
        'carol leaving',
      );
      await marker(observer, channel, 'sharded', sharded.url);
      assert.deepEqual(
        presenceOf(observer)
          .filter((e) => e.subject !== 'watcher')
          .map((e) => [e.type, e.subject]),
        [
          ['presence.joined', 'alice'],
          ['presence.joined', 'carol'],
          ['presence.left', 'carol'],
        ],
      );
      assert.deepEqual((await get('/presence')).subjects, [
        { subject: 'alice', streams: 1 },
        { subject: 'watcher', streams: 1 },
      ]);
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
  });
});

describe('presence across a restart', () => {
  let dir;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'edgestream-presence-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a subject whose streams did not come back leaves after the grace period; the events replay from history', async () => {
    const vars = { PRESENCE_PREFIXES: 'room' };
    const tenant = newTenant();
    const channel = channelOf(tenant, 'restart', 'room');
    let restarted = await startWorker({ vars, persistPath: dir });
    try {
      const token = await subscriber(tenant, { sub: 'alice' });
      const alice = await rawStream(streamUrl(restarted.url, [channel]), { headers: { Authorization: `Bearer ${token}` } });
      await alice.until((t) => eventsOf(t).some((e) => e.event === 'presence.joined'), 30_000, 'alice joining');
      const [{ id }] = eventsOf(alice.text).filter((e) => e.event === 'presence.joined');
      await restarted.stop();
      await alice.close();
      restarted = await startWorker({ vars, persistPath: dir });
      const url = new URL(`/v1/channels/${encodeURIComponent(channel)}/presence`, restarted.url);
      const headers = { Authorization: `Bearer ${await subscriber(tenant)}` };
      const deadline = Date.now() + 30_000;
      let body;
      for (;;) {
        const res = await fetch(url, { headers });
        assert.equal(res.status, 200);
        body = await res.json();
        if (body.subjects.length === 0) break;
        assert.deepEqual(body.subjects, [{ subject: 'alice', streams: 0 }], 'alice is leaving, not gone at once');
        assert.ok(Date.now() < deadline, `alice did not leave: ${JSON.stringify(body)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const replay = await rawStream(streamUrl(restarted.url, [channel]), {
        headers: { ...headers, 'Last-Event-ID': id.replace(/:[0-9]+$/, ':0') },
      });
      try {
        await replay.until((t) => eventsOf(t).some((e) => e.event === 'presence.left'), 30_000, 'the replayed leave');
        assert.deepEqual(
          eventsOf(replay.text)
            .filter((e) => e.event.startsWith('presence.'))
            .slice(0, 2)
            .map((e) => [e.event, JSON.parse(e.data).subject]),
          [
            ['presence.joined', 'alice'],
            ['presence.left', 'alice'],
          ],
        );
      } finally {
        await replay.close();
      }
    } finally {
      await restarted.stop();
    }
  });
});

describe('PRESENCE_PREFIXES', () => {
  it('a value that is not a list of channel prefixes is a 503 configuration error naming the variable', async () => {
    const logs = logCollector();
    const bad = await startWorker({ vars: { PRESENCE_PREFIXES: 'room, Chat:*' }, handleStructuredLogs: logs.handleStructuredLogs });
    try {
      const health = await fetch(new URL('/healthz', bad.url));
      assert.equal(health.status, 503);
      assert.equal((await health.json()).code, 'unavailable');
      const lines = logs.lines.map((l) => JSON.parse(l.message)).filter((l) => l.msg === 'configuration');
      assert.ok(lines.length > 0, 'no configuration log line');
      assert.match(lines[0].error, /^PRESENCE_PREFIXES: .*not a channel prefix/);
    } finally {
      await bad.stop();
    }
  });
});
