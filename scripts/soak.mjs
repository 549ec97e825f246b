#!/usr/bin/env node
// The soak run: the whole stack (the built worker in workerd, a real Valkey,
// the bridge binary) under a mixed, seeded schedule for a given time, with
// exact accounting of every acknowledged event at every subscriber.
//
//   npm run soak -- --minutes 10 [--seed 1] [--tenants 6] [--subscribers 24]
//
// Prints one JSON summary line on stdout (progress goes to stderr) and exits
// 1 when an acknowledged event was lost, duplicated or reordered at any
// subscriber, or when memory grew past the bound stated at MEMORY_BOUND.
//
// Accounting. Every channel has exactly one publisher, which numbers its
// events n = 1, 2, 3 ... in publish order, in the event's data. An event is
// acknowledged by the relay's 202 result (HTTP), by the consumer group
// acknowledging its entry (Valkey Streams, which the bridge does only after
// the edge's 202), or by the bridge's forwarded counter covering it (Pub/Sub).
// A subscriber is one span from its first request to its departure, across
// every reconnect (its own drops, expired tokens, kicks, being cut for
// lagging); each reconnect sends the id of the last event it received. Over
// its span it must receive, on each of its channels, every n from just after
// where it started to at least the last n acknowledged when it left, each
// once and in increasing order. Where it started is its Last-Event-ID, or, for
// a span that began without one, the channel's current state (the latest
// event, which must be no older than what was acknowledged before the request).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startWorker, ROOT } from '../tests/support/worker.mjs';
import { startValkey } from '../tests/support/valkey.mjs';
import { startBridge, bridgeBuilt, BRIDGE_BIN, metric, sum } from '../tests/support/bridge.mjs';
import { token } from '../tests/support/tokens.mjs';
import { cursorOf, channelStats } from '../tests/support/http.mjs';
import { streamUrl } from '../tests/support/sse.mjs';

const { values: opts } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    seed: { type: 'string', default: '1' },
    tenants: { type: 'string', default: '6' },
    subscribers: { type: 'string', default: '24' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stderr.write('usage: npm run soak -- [--minutes N] [--seed S] [--tenants T] [--subscribers K]\n');
  process.exit(0);
}
const MINUTES = Number(opts.minutes);
const SEED = Number(opts.seed) >>> 0;
const TENANTS = Math.max(1, Number(opts.tenants) | 0);
const SUBSCRIBERS = Math.max(1, Number(opts.subscribers) | 0);
if (!(MINUTES > 0)) throw new Error(`--minutes must be a positive number, got ${opts.minutes}`);

// Memory is checked over the last quarter of the load: from the samples
// around three quarters of the run to the last ones, it may grow by at most
// the larger of `kib` and `ratio` of its size at three quarters. The earlier
// part is left out because workerd's resident size climbs for minutes before
// it levels off, as V8's heap and the wasm instance's memory size themselves
// to the load and the channel objects' SQLite page caches fill: in ten-minute
// runs it rose from about 135 MiB to 315-330 MiB and levelled off there after
// five to nine minutes. That growth stops; a leak does not, and shows in the
// last quarter too. Within it, V8 collects garbage in steps of megabytes,
// hence the allowance. The bridge is native and holds only batches in flight,
// so its allowance is small.
//
// So workerd's growth is judged only in runs of `warmUpMinutes` or more: in a
// shorter run the last quarter still falls in the warm-up (a two-minute run
// grows by more than the allowance while it warms up). The bridge has no
// warm-up to speak of and is judged in every run.
const MEMORY_BOUND = {
  workerd: { kib: 32 * 1024, ratio: 0.1, warmUpMinutes: 10 },
  bridge: { kib: 4 * 1024, ratio: 0.1, warmUpMinutes: 0 },
};

const WORKER_VARS = {
  KEEPALIVE_SECONDS: '2',
  RETRY_MS: '200',
  // Small events keep what a stalled client must leave unread before the
  // relay cuts it (a batch of the largest events plus 1 MiB) small.
  MAX_EVENT_BYTES: '4096',
  // Every resume of the run stays inside history, so any stream-reset is a finding.
  HISTORY_SIZE: '20000',
  JWT_LEEWAY_SECONDS: '0',
};
const STREAM_KEY = 'events';
const GROUP = 'edgestream-bridge';
const PUBSUB_CHANNEL = 'events_channel';
const KICK_TTL_SECONDS = 2;
const DEPART_TIMEOUT_MS = 30_000;
const DRAIN_TIMEOUT_MS = 60_000;
// Generous for a loaded 2-core machine; a request without an answer by then
// is retried (publishes, with the same idempotency keys) or reconnected.
const REQUEST_TIMEOUT_MS = 30_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/** mulberry32: a small seeded PRNG, so the schedule's choices are the same for a seed. */
function prng(seed) {
  let a = seed || 0x9e3779b9;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (list) => list[Math.floor(next() * list.length)],
    chance: (p) => next() < p,
    // A uuid-shaped tenant id from the seed, lowercase as the contract wants.
    uuid: () => {
      const hex = Array.from({ length: 32 }, () => Math.floor(next() * 16).toString(16)).join('');
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
    },
  };
}
// One generator per actor, so one actor's pace does not shift another's choices.
const rng = (stream) => prng((SEED * 2654435761 + stream * 40503) >>> 0);

const counts = (obj, key) => {
  obj[key] = (obj[key] ?? 0) + 1;
};

// ---------------------------------------------------------------- the stack

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgestream-soak-'));
const serverEnds = {};
let workerd;
let valkey;
let bridge;
let redis;
const stopAll = async () => {
  redis?.close();
  await bridge?.stop().catch(() => {});
  await workerd?.stop().catch(() => {});
  await valkey?.stop().catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
};
process.on('SIGINT', () => stopAll().finally(() => process.exit(130)));

if (!fs.existsSync(path.join(ROOT, 'build/index.js'))) throw new Error('build/index.js is missing: run bash scripts/build-worker');
if (!bridgeBuilt()) throw new Error(`${BRIDGE_BIN} is missing: run cargo build --release -p edgestream-bridge`);

try {
  valkey = await startValkey({ dir: path.join(tmp, 'valkey') });
  workerd = await startWorker({
    vars: WORKER_VARS,
    // On disk, so the channels' history is in files rather than in workerd's memory.
    persistPath: path.join(tmp, 'objects'),
    // The worker's own socket, as in production (miniflare's entry worker
    // would re-stream every body in between).
    direct: true,
    handleStructuredLogs: ({ message }) => {
      if (!message.includes('stream ended by the relay')) return;
      counts(serverEnds, /"code":"([a-z_]+)"/.exec(message)?.[1] ?? 'unknown');
    },
  });
  bridge = await startBridge({
    valkeyUrl: valkey.url,
    edgeUrl: workerd.url,
    args: ['--stream', STREAM_KEY, '--consumer', 'soak-1'],
    env: { MAX_EVENT_BYTES: WORKER_VARS.MAX_EVENT_BYTES, BRIDGE_LOG_LEVEL: 'warn' },
  });
  redis = await valkey.client();
  await waitUntil(async () => (await redis.command('PUBSUB', 'NUMSUB', PUBSUB_CHANNEL))[1] >= 1, 20_000, 'the bridge to subscribe');
  await waitUntil(async () => {
    try {
      return (await redis.command('XINFO', 'GROUPS', STREAM_KEY)).length > 0;
    } catch {
      return false;
    }
  }, 20_000, 'the bridge to create its consumer group');
} catch (e) {
  // Nothing of the stack may outlive a failed start.
  await stopAll();
  throw e;
}
const BASE = workerd.url;

async function waitUntil(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------- memory

/** VmRSS (KiB) of this process's descendants named `name` (workerd is miniflare's child). */
function rssOf(name) {
  const parents = new Map();
  const comms = new Map();
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      comms.set(pid, stat.slice(stat.indexOf('(') + 1, close));
      parents.set(pid, stat.slice(close + 2).split(' ')[1]);
    } catch {
      // The process ended between listing and reading.
    }
  }
  const mine = (pid) => {
    for (let at = parents.get(pid); at && at !== '0'; at = parents.get(at)) if (at === String(process.pid)) return true;
    return false;
  };
  let kib = 0;
  for (const [pid, comm] of comms) {
    if (comm !== name || !mine(pid)) continue;
    kib += rssOfPid(pid);
  }
  return kib;
}
function rssOfPid(pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  } catch {
    return 0;
  }
}
// Sampled every 2 s from the end of the warm-up on.
const memory = { workerd: [], bridge: [], at: [] };
const sampleMemory = () => {
  memory.workerd.push(rssOf('workerd'));
  memory.bridge.push(rssOfPid(bridge.proc.pid));
  memory.at.push(Date.now());
};
const bootMemory = { workerd: rssOf('workerd'), bridge: rssOfPid(bridge.proc.pid) };

// ---------------------------------------------------------------- tenants and channels

const plan = rng(0);
const channels = [];
const tenants = [];
const KINDS = ['http', 'http', 'streams', 'pubsub'];
for (let t = 0; t < TENANTS; t++) {
  const id = plan.uuid();
  const own = KINDS.map((kind, i) => addChannel(id, kind, `r${t}-${i}`, 'soak.tick'));
  tenants.push({ id, channels: own, users: ['u0', 'u1', 'u2', 'u3'].map((u) => `${t}-${u}`) });
}
// Its own tenant, so kicks never end the stalled stream before the relay cuts it.
const lagTenant = plan.uuid();
const lagChannel = addChannel(lagTenant, 'http', 'lag', 'blob.sent');

function addChannel(tenant, kind, resource, type) {
  const channel = { index: channels.length, name: `soak:${tenant}:${resource}`, tenant, kind, type, published: 0, acked: 0 };
  channels.push(channel);
  return channel;
}

// ---------------------------------------------------------------- publishers

const stats = {
  http: { requests: 0, events: 0, retries: 0, failures: {}, replays: 0, replay_not_deduplicated: 0, id_mismatch: 0 },
  streams: { entries: 0 },
  pubsub: { messages: 0, unreceived: 0 },
};
let publishing = true;

const tokens = new Map();
/** A publisher token of `tenant`, renewed well before it expires. */
async function publisherToken(tenant) {
  const held = tokens.get(tenant);
  if (held && held.until > Date.now()) return held.jwt;
  const jwt = await token({ tenant_id: tenant, sub: 'soak-publisher', scope: 'events:publish' }, { expiresIn: '5m' });
  tokens.set(tenant, { jwt, until: Date.now() + 4 * 60_000 });
  return jwt;
}

/** POSTs the events (each {channel, data}) until the relay accepts them; marks them acknowledged. */
async function publishHttp(tenant, events, { replay = false, single = false } = {}) {
  const items = events.map(({ channel, n, data }) => ({
    channel: channel.name,
    event: channel.type,
    data,
    idempotency_key: `soak-${SEED}-${channel.index}-${n}`,
  }));
  const body = JSON.stringify(single && items.length === 1 ? items[0] : { events: items });
  const send = async () => {
    for (let attempt = 0; ; attempt++) {
      stats.http.requests += 1;
      try {
        const res = await fetch(new URL('/v1/publish', BASE), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await publisherToken(tenant)}` },
          body,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        const text = await res.text();
        if (res.status === 202) return JSON.parse(text).results;
        counts(stats.http.failures, String(res.status));
        // A 4xx other than a rate limit says the run itself is wrong: retrying would not help.
        if (res.status < 500 && res.status !== 429) throw new Error(`publish refused: ${res.status} ${text.slice(0, 300)}`);
      } catch (e) {
        if (e.message.startsWith('publish refused')) throw e;
        counts(stats.http.failures, 'network');
      }
      // Not acknowledged: retried with the same idempotency keys, which is safe.
      stats.http.retries += 1;
      if (attempt > 100) throw new Error('publish kept failing');
      await sleep(200);
    }
  };
  const results = await send();
  results.forEach((r, i) => {
    if (r.id !== events[i].n || r.duplicate !== false) stats.http.id_mismatch += 1;
  });
  for (const { channel, n } of events) channel.acked = Math.max(channel.acked, n);
  stats.http.events += events.length;
  if (replay) {
    // The caller's retry of a request that was in fact accepted: the same
    // ids come back as duplicates and nothing is delivered twice.
    stats.http.replays += 1;
    const again = await send();
    again.forEach((r, i) => {
      if (r.id !== events[i].n || r.duplicate !== true) stats.http.replay_not_deduplicated += 1;
    });
  }
}

const dataOf = (channel, n) => ({ c: channel.index, n });

async function httpPublisher(t) {
  const r = rng(100 + t);
  const tenant = tenants[t];
  const own = tenant.channels.filter((c) => c.kind === 'http');
  while (publishing) {
    const size = r.int(1, 6);
    const events = [];
    for (let i = 0; i < size; i++) {
      const channel = r.pick(own);
      channel.published += 1;
      events.push({ channel, n: channel.published, data: dataOf(channel, channel.published) });
    }
    await publishHttp(tenant.id, events, { replay: r.chance(0.1), single: r.chance(0.3) });
    await sleep(r.int(150, 600));
  }
}

// Valkey Streams, with each entry holding django-eventstream's message (its
// `data` JSON-encoded once more, as send_event() writes it).
const streamPending = [];
const djangoMessage = (channel, n) =>
  JSON.stringify({ channel: channel.name, event_type: channel.type, data: JSON.stringify(dataOf(channel, n)), pub_id: null });

async function streamsPublisher() {
  const r = rng(200);
  const own = channels.filter((c) => c.kind === 'streams');
  while (publishing) {
    const size = r.int(1, 4);
    const writes = [];
    for (let i = 0; i < size; i++) {
      const channel = r.pick(own);
      channel.published += 1;
      const n = channel.published;
      writes.push(redis.command('XADD', STREAM_KEY, '*', 'message', djangoMessage(channel, n)).then((id) => ({ id, channel, n })));
    }
    // Pipelined on one connection, so the entries are in the stream in this order.
    streamPending.push(...(await Promise.all(writes)));
    stats.streams.entries += size;
    await sleep(r.int(150, 500));
  }
}

const entryId = (id) => id.split('-').map(BigInt);
const entryBefore = (a, b) => {
  const [x, y] = [entryId(a), entryId(b)];
  return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]);
};
/** Marks the entries the consumer group has acknowledged: delivered to the group and no longer pending. */
async function checkStreamAcks() {
  if (!streamPending.length) return;
  const groups = await redis.command('XINFO', 'GROUPS', STREAM_KEY);
  const info = Object.fromEntries(groups[0].flatMap((v, i, a) => (i % 2 ? [] : [[v, a[i + 1]]])));
  const [pendingCount, oldestPending] = await redis.command('XPENDING', STREAM_KEY, GROUP);
  const delivered = info['last-delivered-id'];
  const acked = (id) => !entryBefore(delivered, id) && (pendingCount === 0 || entryBefore(id, oldestPending));
  while (streamPending.length && acked(streamPending[0].id)) {
    const { channel, n } = streamPending.shift();
    channel.acked = Math.max(channel.acked, n);
  }
}

// Pub/Sub with django-eventstream's message. Pub/Sub has no per-message
// receipt: a message counts as acknowledged once the bridge's forwarded
// counter covers every message published so far, and nothing was dropped or
// rejected (which the summary reports and fails on).
let pubsubUnacked = [];
async function pubsubPublisher() {
  const r = rng(300);
  const own = channels.filter((c) => c.kind === 'pubsub');
  while (publishing) {
    const channel = r.pick(own);
    channel.published += 1;
    const n = channel.published;
    // No subscriber received it, so nobody can deliver it: sending it again is safe.
    while ((await redis.command('PUBLISH', PUBSUB_CHANNEL, djangoMessage(channel, n))) < 1) {
      stats.pubsub.unreceived += 1;
      await sleep(100);
    }
    pubsubUnacked.push({ channel, n });
    stats.pubsub.messages += 1;
    await sleep(r.int(150, 500));
  }
}
async function checkPubsubAcks() {
  if (!pubsubUnacked.length) return;
  const m = await bridge.metrics();
  // Read after the metrics: the bridge cannot have forwarded more than was
  // published by then, so equality means every message so far.
  if (metric(m, 'edgestream_bridge_forwarded_total', 'source="pubsub"') < stats.pubsub.messages) return;
  for (const { channel, n } of pubsubUnacked) channel.acked = Math.max(channel.acked, n);
  pubsubUnacked = [];
}

let ackLoopRunning = true;
async function ackLoop() {
  while (ackLoopRunning) {
    try {
      await checkStreamAcks();
      await checkPubsubAcks();
    } catch (e) {
      log(`acknowledgement check failed: ${e.message}`);
    }
    await sleep(200);
  }
}

// ---------------------------------------------------------------- subscribers

const streamStats = { connections: 0, opened: 0, refused: {}, ended: {}, resets: 0 };
const totals = { spans: 0, expected: 0, delivered: 0, lost: 0, duplicated: 0, out_of_order: 0, stale_state: 0, departure_timeouts: 0, unknown_events: 0 };
const lostSamples = [];

/**
 * One subscriber's span: the channels it reads, where it started on each,
 * every n it received; it reconnects by itself until told to leave.
 */
class Subscriber {
  constructor({ tenant, user, chans, startAtAck, shortToken, r }) {
    this.tenant = tenant;
    this.user = user;
    this.chans = chans;
    this.r = r;
    this.shortToken = shortToken;
    this.state = new Map(chans.map((c) => [c.index, { start: undefined, last: 0, seen: new Set() }]));
    // Started at the acknowledged position (a Last-Event-ID), or fresh (current state first).
    this.lastId = startAtAck ? cursorOf(chans.map((c) => [c.name, c.acked])) : undefined;
    if (startAtAck) {
      for (const c of chans) Object.assign(this.state.get(c.index), { start: c.acked, last: c.acked });
    }
    this.leaving = false;
    this.controller = undefined;
    this.hold = undefined;
    this.waiters = new Set();
    totals.spans += 1;
  }

  async token() {
    const expiresIn = this.shortToken ? `${this.r.int(3, 8)}s` : '10m';
    return token({ tenant_id: this.tenant, sub: this.user }, { expiresIn });
  }

  notify() {
    for (const w of this.waiters) w();
  }

  start() {
    this.running = this.run();
  }

  /** Connects, reads, reconnects with the last id, until leave(). */
  async run() {
    while (!this.leaving) {
      const cause = await this.connectOnce();
      counts(streamStats.ended, cause);
      if (this.leaving) break;
      if (cause === 'refused_revoked') await sleep(500);
      else if (cause === 'network_error' || cause === 'refused_other') await sleep(300);
      else if (cause !== 'client_drop') await sleep(this.r.int(0, 200));
    }
  }

  async connectOnce() {
    streamStats.connections += 1;
    const ackedBefore = new Map(this.chans.map((c) => [c.index, c.acked]));
    const fresh = this.lastId === undefined;
    const controller = new AbortController();
    this.controller = controller;
    this.dropped = false;
    let res;
    const noAnswer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      res = await fetch(streamUrl(BASE, this.chans.map((c) => c.name)), {
        headers: { Authorization: `Bearer ${await this.token()}`, ...(this.lastId ? { 'Last-Event-ID': this.lastId } : {}) },
        signal: controller.signal,
      });
    } catch {
      return this.leaving ? 'client_left' : this.dropped ? 'client_drop' : 'network_error';
    } finally {
      clearTimeout(noAnswer);
    }
    if (res.status !== 200) {
      const text = await res.text().catch(() => '');
      const code = /"code":"([a-z_]+)"/.exec(text)?.[1] ?? String(res.status);
      counts(streamStats.refused, code);
      return code === 'revoked' ? 'refused_revoked' : 'refused_other';
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let error;
    let opened = false;
    try {
      for (;;) {
        if (this.hold) await this.hold;
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const f = parseFrame(frame);
          if (f.event === 'stream-open') {
            opened = true;
            streamStats.opened += 1;
          } else if (f.event === 'stream-reset') {
            streamStats.resets += 1;
          } else if (f.event === 'stream-error') {
            error = JSON.parse(f.data).code;
          } else if (f.data !== undefined) {
            this.receive(f, fresh, ackedBefore);
          }
        }
      }
    } catch {
      if (this.leaving) return 'client_left';
      if (this.dropped) return 'client_drop';
      return 'network_error';
    } finally {
      controller.abort();
    }
    if (this.leaving && !error) return 'client_left';
    return error ?? (opened ? 'ended_without_error' : 'ended_before_open');
  }

  receive(frame, fresh, ackedBefore) {
    let data;
    try {
      data = JSON.parse(frame.data);
    } catch {
      totals.unknown_events += 1;
      return;
    }
    const st = this.state.get(data.c);
    if (!st || frame.event !== channels[data.c].type) {
      totals.unknown_events += 1;
      return;
    }
    const { n } = data;
    if (st.start === undefined) {
      // The first event of a span that began without a resume point: the
      // channel's current state, which must be no older than what was
      // acknowledged before the request (a later one is fine: it was
      // published meanwhile).
      st.start = n - 1;
      if (fresh && n < ackedBefore.get(data.c)) totals.stale_state += 1;
    }
    totals.delivered += 1;
    if (n <= st.start || st.seen.has(n)) totals.duplicated += 1;
    else if (n < st.last) totals.out_of_order += 1;
    st.seen.add(n);
    st.last = Math.max(st.last, n);
    this.lastId = frame.id ?? this.lastId;
    this.notify();
  }

  /** Cuts the connection as a network failure would; run() resumes with the last id. */
  drop() {
    this.dropped = true;
    this.controller?.abort();
  }

  /** Leaves once every event acknowledged by now has arrived (bounded), then accounts the span. */
  async leave() {
    const target = new Map(this.chans.map((c) => [c.index, c.acked]));
    const caughtUp = () => [...target].every(([c, a]) => this.state.get(c).last >= a);
    if (!caughtUp()) {
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          this.waiters.delete(check);
          totals.departure_timeouts += 1;
          resolve();
        }, DEPART_TIMEOUT_MS);
        const check = () => {
          if (caughtUp()) {
            clearTimeout(timer);
            this.waiters.delete(check);
            resolve();
          }
        };
        this.waiters.add(check);
      });
    }
    this.leaving = true;
    this.releaseHold?.();
    this.controller?.abort();
    await this.running;
    for (const [c, st] of this.state) {
      const until = Math.max(target.get(c), st.last);
      if (st.start === undefined) {
        // Not even the current state arrived.
        if (until > 0) {
          totals.expected += 1;
          totals.lost += 1;
          if (lostSamples.length < 20) lostSamples.push({ channel: channels[c].name, kind: channels[c].kind, n: until });
        }
        continue;
      }
      for (let n = st.start + 1; n <= until; n++) {
        totals.expected += 1;
        if (!st.seen.has(n)) {
          totals.lost += 1;
          if (lostSamples.length < 20) lostSamples.push({ channel: channels[c].name, kind: channels[c].kind, n });
        }
      }
    }
  }
}

function parseFrame(text) {
  const f = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const at = line.indexOf(':');
    const name = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
    if (name === 'data') f.data = f.data === undefined ? value : `${f.data}\n${value}`;
    else if (name === 'id' || name === 'event') f[name] = value;
  }
  return f;
}

const live = new Set();
let arriving = true;
let onDrained;
const drained = new Promise((resolve) => (onDrained = resolve));
async function subscriberSlot(slot) {
  const r = rng(400 + slot);
  while (arriving) {
    const tenant = r.pick(tenants);
    const chans = tenant.channels.filter(() => r.chance(0.5));
    if (!chans.length) chans.push(r.pick(tenant.channels));
    const sub = new Subscriber({
      tenant: tenant.id,
      user: r.pick(tenant.users),
      chans,
      startAtAck: r.chance(0.5),
      shortToken: r.chance(0.3),
      // Its own generator: how often it reconnects must not shift the slot's later choices.
      r: prng(Math.floor(r.next() * 2 ** 32)),
    });
    live.add(sub);
    sub.start();
    const lifetime = r.int(8_000, 45_000);
    const dropAt = r.chance(0.4) ? r.int(1_000, lifetime - 1_000) : undefined;
    const born = Date.now();
    if (dropAt !== undefined) {
      await sleepWhile(dropAt);
      sub.drop();
    }
    await sleepWhile(lifetime - (Date.now() - born));
    // At the end of the run, stay until everything published is acknowledged.
    if (!arriving) await drained;
    await sub.leave();
    live.delete(sub);
    await sleepWhile(r.int(0, 2_000));
  }
}
/** Sleeps up to `ms`, waking early when the run winds down. */
async function sleepWhile(ms) {
  const until = Date.now() + ms;
  while (arriving && Date.now() < until) await sleep(Math.min(250, until - Date.now()));
}

// ---------------------------------------------------------------- kicks

const kicks = { user: 0, tenant: 0, closed: 0 };
async function kicker() {
  const r = rng(500);
  const admin = await token({ sub: 'soak-admin', scope: 'events:admin events:platform' }, { expiresIn: '2h' });
  await sleepWhile(3_000);
  while (arriving) {
    const tenant = r.pick(tenants);
    const byUser = r.chance(0.6);
    const body = byUser ? { tenant: tenant.id, user: r.pick(tenant.users), ttl_seconds: KICK_TTL_SECONDS } : { tenant: tenant.id };
    const res = await fetch(new URL('/v1/admin/kick', BASE), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${admin}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (res.status !== 200) throw new Error(`kick failed: ${res.status} ${await res.text()}`);
    kicks.closed += (await res.json()).closed;
    counts(kicks, byUser ? 'user' : 'tenant');
    await sleepWhile(r.int(4_000, 9_000));
  }
}

// ---------------------------------------------------------------- lagging

// One subscriber of the lag channel stops reading; big events are published
// until the relay cuts it for lagging; then it reads again, finds the cut,
// and resumes from the last event it processed.
const lag = { episodes: 0, cut: 0, not_cut: 0, events: 0 };
const LAG_BATCH = 100;
const LAG_MAX_EVENTS = 20_000;
async function lagger(lagger) {
  const r = rng(600);
  const blob = 'x'.repeat(3_900);
  const every = Math.max(30_000, Math.min(120_000, (MINUTES * 60_000) / 4));
  await sleepWhile(Math.min(10_000, (MINUTES * 60_000) / 6));
  while (arriving) {
    lag.episodes += 1;
    lagger.hold = new Promise((resolve) => (lagger.releaseHold = resolve));
    // The stalled stream is the lag channel's only one: it is cut when the channel has none.
    const attached = async () => (await channelStats(BASE, lagChannel.name)).streams > 0;
    await waitUntil(attached, 20_000, 'the lagging subscriber to attach');
    await sleep(300);
    let sent = 0;
    let cut = false;
    while (!cut && sent < LAG_MAX_EVENTS) {
      const events = [];
      for (let i = 0; i < LAG_BATCH; i++) {
        lagChannel.published += 1;
        events.push({ channel: lagChannel, n: lagChannel.published, data: { ...dataOf(lagChannel, lagChannel.published), blob } });
      }
      await publishHttp(lagTenant, events);
      sent += LAG_BATCH;
      cut = !(await attached());
    }
    lag.events += sent;
    if (cut) lag.cut += 1;
    else lag.not_cut += 1;
    lagger.hold = undefined;
    lagger.releaseHold();
    await sleepWhile(every + r.int(0, 5_000));
  }
}

// ---------------------------------------------------------------- the run

const started = Date.now();
const runMs = MINUTES * 60_000;
// A run that hangs (an actor waiting on something that never comes) still
// ends, with its stack stopped and a failing summary.
const watchdog = setTimeout(async () => {
  log('the run did not finish in time');
  process.stdout.write(`${JSON.stringify({ ok: false, failures: ['stalled'], seed: SEED, minutes: MINUTES })}\n`);
  await stopAll();
  process.exit(1);
}, runMs + DRAIN_TIMEOUT_MS + DEPART_TIMEOUT_MS + 120_000);
watchdog.unref();
const warmupMs = Math.min(20_000, runMs * 0.2);
log(`seed ${SEED}, ${TENANTS + 1} tenants, ${channels.length} channels, ${SUBSCRIBERS} subscribers, ${MINUTES} min; workerd ${BASE}`);

// The first error of any actor ends the load phase early and fails the run.
let fatal;
let onFatal;
const fatalSignal = new Promise((resolve) => (onFatal = resolve));
const guard = (p) =>
  p.catch((e) => {
    fatal ??= e;
    onFatal();
  });

const ackRunning = guard(ackLoop());
const publishers = [...tenants.map((_, t) => httpPublisher(t)), streamsPublisher(), pubsubPublisher()].map(guard);
const lagSub = new Subscriber({ tenant: lagTenant, user: 'lagger', chans: [lagChannel], startAtAck: true, shortToken: false, r: rng(700) });
lagSub.start();
const slots = Array.from({ length: SUBSCRIBERS }, (_, i) => guard(sleep(i * 150).then(() => subscriberSlot(i))));
const side = [kicker(), lagger(lagSub)].map(guard);

let lastReport = Date.now();
const loadDone = Date.now() + runMs;
while (Date.now() < loadDone && !fatal) {
  await Promise.race([sleep(Math.min(2_000, loadDone - Date.now())), fatalSignal]);
  if (Date.now() - started >= warmupMs) sampleMemory();
  if (Date.now() - lastReport >= 30_000) {
    lastReport = Date.now();
    const acked = channels.reduce((n, c) => n + c.acked, 0);
    log(`${Math.round((Date.now() - started) / 1000)} s: ${acked} acknowledged, ${totals.delivered} delivered, ${live.size} subscribers, ${totals.lost} lost so far`);
  }
}
if (fatal) log(`run failed: ${fatal.stack ?? fatal}`);

// Wind down: no new subscribers, kicks or lag episodes; the publishers stop;
// everything published is acknowledged; then every subscriber leaves once it
// has all of it.
log('winding down');
arriving = false;
publishing = false;
await Promise.all([...publishers, ...side]);
const drainDeadline = Date.now() + DRAIN_TIMEOUT_MS;
while ((streamPending.length || pubsubUnacked.length) && Date.now() < drainDeadline) await sleep(200);
const unacknowledged = { streams: streamPending.length, pubsub: pubsubUnacked.length };
sampleMemory();
const endMemory = { workerd: memory.workerd.slice(-3), bridge: memory.bridge.slice(-3) };
onDrained();
await Promise.all(slots);
await lagSub.leave();
ackLoopRunning = false;
await ackRunning;

const bridgeMetrics = await bridge.metrics();
await stopAll();

// ---------------------------------------------------------------- the summary

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
};
const memoryOf = (name) => {
  const samples = memory[name];
  // The three samples nearest three quarters of the load.
  const lateAt = started + runMs * 0.75;
  const nearest = memory.at.map((at, i) => [Math.abs(at - lateAt), i]).sort((a, b) => a[0] - b[0]).slice(0, 3);
  const late = median(nearest.map(([, i]) => samples[i]));
  const end = median(endMemory[name]);
  const bound = MEMORY_BOUND[name];
  const allowed = Math.max(bound.kib, Math.round(late * bound.ratio));
  // One sample per minute of the run, to show the trend.
  const perMinute = [];
  for (let i = 0; i < samples.length; i++) {
    if (memory.at[i] - started >= perMinute.length * 60_000) perMinute.push(samples[i]);
  }
  return {
    boot_kib: bootMemory[name],
    warm_kib: samples[0],
    three_quarters_kib: late,
    end_kib: end,
    peak_kib: Math.max(...samples),
    growth_kib: end - late,
    allowed_growth_kib: allowed,
    judged: runMs >= bound.warmUpMinutes * 60_000,
    per_minute_kib: perMinute,
  };
};
const mem = { workerd: memoryOf('workerd'), bridge: memoryOf('bridge') };
const bridgeOut = {
  received: sum(bridgeMetrics, 'edgestream_bridge_received_total'),
  forwarded: sum(bridgeMetrics, 'edgestream_bridge_forwarded_total'),
  duplicates: sum(bridgeMetrics, 'edgestream_bridge_duplicates_total'),
  rejected: sum(bridgeMetrics, 'edgestream_bridge_rejected_total'),
  dropped: sum(bridgeMetrics, 'edgestream_bridge_dropped_total'),
  dead_lettered: sum(bridgeMetrics, 'edgestream_bridge_dead_lettered_total'),
  retried: sum(bridgeMetrics, 'edgestream_bridge_retried_total'),
};
const acknowledged = {
  http: channels.filter((c) => c.kind === 'http').reduce((n, c) => n + c.acked, 0),
  streams: channels.filter((c) => c.kind === 'streams').reduce((n, c) => n + c.acked, 0),
  pubsub: channels.filter((c) => c.kind === 'pubsub').reduce((n, c) => n + c.acked, 0),
};
const failures = [];
if (fatal) failures.push(`run error: ${fatal.message}`);
if (totals.lost) failures.push('lost');
if (totals.duplicated) failures.push('duplicated');
if (totals.out_of_order) failures.push('out_of_order');
if (totals.stale_state) failures.push('stale_state');
if (totals.unknown_events) failures.push('unknown_events');
if (streamStats.resets) failures.push('stream_reset');
if (stats.http.id_mismatch || stats.http.replay_not_deduplicated) failures.push('publish_results');
if (unacknowledged.streams || unacknowledged.pubsub) failures.push('unacknowledged');
if (bridgeOut.rejected || bridgeOut.dropped || bridgeOut.dead_lettered) failures.push('bridge_gave_up');
for (const name of ['workerd', 'bridge']) {
  if (mem[name].judged && mem[name].growth_kib > mem[name].allowed_growth_kib) failures.push(`${name}_memory`);
}

const summary = {
  ok: failures.length === 0,
  failures,
  seed: SEED,
  minutes: MINUTES,
  duration_s: Math.round((Date.now() - started) / 1000),
  tenants: TENANTS + 1,
  channels: channels.length,
  events: {
    acknowledged: acknowledged.http + acknowledged.streams + acknowledged.pubsub,
    by_source: acknowledged,
    expected: totals.expected,
    delivered: totals.delivered,
    lost: totals.lost,
    duplicated: totals.duplicated,
    out_of_order: totals.out_of_order,
    stale_state: totals.stale_state,
    unknown: totals.unknown_events,
    unacknowledged,
    lost_samples: lostSamples,
  },
  publish: { http: stats.http, streams: stats.streams, pubsub: stats.pubsub },
  subscribers: { spans: totals.spans, departure_timeouts: totals.departure_timeouts },
  streams: { ...streamStats, ended_by_relay: serverEnds },
  kicks,
  lagging: lag,
  bridge: bridgeOut,
  memory: mem,
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(summary.ok ? 0 : 1);
