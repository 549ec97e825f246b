// Measures the floor relays side by side, each in a fresh server, with the
// same clients: N streams of one channel, then events published one at a
// time, each to every stream.
//
//   sockets  worker.js in workerd: a hibernatable WebSocket per stream
//   hub      hub.js in workerd: the channel's streams share a socket per isolate
//   hub-js   the same, each response body a JavaScript ReadableStream (less memory)
//   nchan    nginx with nchan (bench/peers/install), for reference
//
//   node bench/floor/run.mjs [--shapes sockets,hub[,hub-js][,nchan]] [--streams 1000] [--events 100]
//
// Per shape it prints the server's CPU per delivery and per stream opened,
// resident memory per stream, streams opened per second, the time from a
// publish to its last delivery (p50, p99) and the object's sends per event.
// Every frame carries its event's index, and every stream must see every
// index once, in order: a lost, duplicated or reordered delivery, a missing
// delivery after a timeout, or a runtime error in the server's log fails the
// run (exit status 1). Half-way through, two streams' clients disconnect (for
// hub, one holds the socket, so ownership must pass on). The hub
// is also checked for what sharing a socket must keep: late streams catch up
// from history, kicks end exactly the tagged streams, stats count streams,
// the object restarting loses nothing, and a client that stops reading is
// closed as lagging while the others go on.
import { Miniflare } from 'miniflare';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    shapes: { type: 'string', default: 'sockets,hub,hub-js' },
    streams: { type: 'string', default: '1000' },
    events: { type: 'string', default: '100' },
  },
});
const SHAPES = values.shapes.split(',');
const STREAMS = Number(values.streams);
const EVENTS = Number(values.events);
const HERE = import.meta.dirname;
const ROOT = path.resolve(HERE, '../..');
const PAYLOAD = 128;
// Opens in flight at once: enough to keep the server busy without
// overflowing its accept backlog at 10,000 streams.
const OPENING = 500;
const EVENT_TIMEOUT_MS = 10_000 + STREAMS;
const CHECK_TIMEOUT_MS = 15_000;
// Streams that join late, catching up from history (hub).
const LATE = Math.max(2, Math.ceil(STREAMS / 100));
// One stream in a hundred carries the tag the kick ends (hub).
const KICKED = (i) => i % 100 === 50 || (STREAMS < 100 && i === 1);
// Wakes a hub's owner dispatches before it hands the socket on: small enough
// that ownership rotates a few times in every run.
const OWNER_BUDGET = String(Math.max(50, Math.floor((STREAMS * EVENTS) / 4)));
// The script and bindings of each shape served by workerd.
const WORKERS = {
  sockets: ['worker.js', {}],
  hub: ['hub.js', { OWNER_BUDGET }],
  'hub-js': ['hub.js', { OWNER_BUDGET, BODY: 'js' }],
};
// Events published after the object restarts (hub).
const AFTER_RESTART = 3;
// Large frames for the lagging check, on a channel of its own (hub).
const LAG_FRAME = 64 * 1024;
const LAG_FRAMES_MAX = 600;
// What in the server's log means something went wrong.
const LOG_FAILURES = [
  /had hung/,
  /different request/,
  /Cannot perform I\/O/,
  /"floor":"(misrouted|stream-failed|attach-failed)"/,
  /Uncaught/,
];

const failures = [];
const fail = (shape, message) => {
  failures.push(`${shape}: ${message}`);
  console.error(`FAIL ${shape}: ${message}`);
};

// Every stream, publish and stats request has a connection of its own: a
// kept-alive connection can be reused just as the server closes it (workerd
// closes one idle for 5 s, and a fan-out to 10,000 streams keeps this process
// too busy to notice), and the request then fails with "socket hang up".
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

/** CPU (user + system, ms) and resident memory (KiB) of this process's descendants named `name`. */
function usage(name) {
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
    for (let at = pid; at && at !== '0'; at = parents.get(at)) if (at === String(process.pid)) return true;
    return false;
  };
  let ticks = 0;
  let rssKib = 0;
  for (const [pid, comm] of comms) {
    if (comm !== name || !mine(pid)) continue;
    try {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      rssKib += Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    } catch {
      // As above.
    }
  }
  // /proc counts CPU in clock ticks of 10 ms (USER_HZ is 100 on Linux).
  return { cpuMs: ticks * 10, rssKib };
}

/** workerd through miniflare's API, on the worker's own socket. */
async function startWorkerd(script, bindings = {}) {
  const log = [];
  const collect = (stream) => {
    let rest = '';
    stream.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      log.push(...lines);
    });
  };
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(HERE, script),
    compatibilityDate: '2026-04-20',
    compatibilityFlags: ['enable_request_signal'],
    durableObjects: { CHANNEL: { className: 'Channel', useSQLite: true } },
    bindings,
    cf: false,
    unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    handleRuntimeStdio(stdout, stderr) {
      collect(stdout);
      collect(stderr);
    },
  });
  await mf.ready;
  const url = await mf.unsafeGetDirectURL();
  return { url, process: 'workerd', log, stop: () => mf.dispose() };
}

/** nginx with nchan, configured from bench/peers/nchan/nginx.conf. */
async function startNchan() {
  const module = '/usr/lib/nginx/modules/ngx_nchan_module.so';
  if (!fs.existsSync('/usr/sbin/nginx') || !fs.existsSync(module)) {
    throw new Error('nginx with nchan is not installed (bash bench/peers/install)');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'floor-nchan-'));
  const port = await new Promise((resolve) => {
    const server = http.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
  const template = fs.readFileSync(path.join(ROOT, 'bench/peers/nchan/nginx.conf'), 'utf8');
  const config = template.replaceAll('@MODULE@', module).replaceAll('@DIR@', dir).replaceAll('@PORT@', String(port));
  fs.writeFileSync(path.join(dir, 'nginx.conf'), config);
  const nginx = spawn('/usr/sbin/nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const url = new URL(`http://127.0.0.1:${port}`);
  for (let attempt = 0; ; attempt++) {
    const ok = await new Promise((resolve) => {
      http.get(new URL('/healthz', url), (res) => resolve(res.statusCode === 200 && (res.resume(), true))).on('error', () => resolve(false));
    });
    if (ok) break;
    if (attempt > 100) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = [];
  return {
    url,
    process: 'nginx',
    log,
    stop: async () => {
      nginx.kill('SIGTERM');
      await new Promise((resolve) => nginx.once('exit', resolve));
      const errors = fs.readFileSync(path.join(dir, 'error.log'), 'utf8').split('\n');
      log.push(...errors.filter((line) => /\[(alert|crit|emerg)\]/.test(line)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One client stream. Frames are parsed as they arrive; every `data:` line
 * starts with its event's index, which must be the next one expected.
 */
class Client {
  constructor(id, { tags = [], after = null } = {}) {
    this.id = id;
    this.tags = tags;
    this.after = after;
    this.next = 0;
    this.errors = [];
    this.ended = false;
    this.endedWith = null;
    this.owners = 0;
    this.rest = '';
    this.onIndex = () => {};
  }

  open(server, channelPath, query = '') {
    return new Promise((opened, failed) => {
      const search = new URLSearchParams(query);
      for (const tag of this.tags) search.append('tag', tag);
      if (this.after !== null) search.set('after', String(this.after));
      const target = new URL(`${channelPath}${search.size ? `?${search}` : ''}`, server.url);
      this.request = http.get(target, { agent, headers: { Accept: 'text/event-stream' } }, (response) => {
        this.response = response;
        response.setEncoding('utf8');
        let open = false;
        response.on('data', (chunk) => {
          if (!open && (chunk.includes(': open') || server.process === 'nginx')) {
            open = true;
            opened(this);
          }
          this.read(chunk);
        });
        response.on('end', () => (this.ended = true));
        response.on('error', () => (this.ended = true));
      });
      this.request.on('error', (error) => (this.ended ? null : failed(new Error(`stream ${this.id}: ${error.message}`))));
    });
  }

  read(chunk) {
    const frames = (this.rest + chunk).split('\n\n');
    this.rest = frames.pop();
    for (const frame of frames) {
      if (frame.startsWith(': owner')) this.owners++;
      if (frame.startsWith('event: stream-error')) this.endedWith = JSON.parse(frame.split('data: ')[1]).code;
      if (frame.startsWith('event: ')) continue;
      const at = frame.indexOf('data: ');
      if (at < 0) continue;
      const index = Number.parseInt(frame.slice(at + 6), 10);
      if (index === this.next) {
        this.next++;
        this.onIndex(this, index);
      } else {
        this.errors.push(index < this.next ? `duplicate or reordered ${index} after ${this.next - 1}` : `gap: ${index} after ${this.next - 1}`);
      }
    }
  }

  close() {
    this.request.destroy();
  }
}

const request = (server, method, target, body) =>
  new Promise((resolve, reject) => {
    const req = http.request(new URL(target, server.url), { method, agent }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode, text }));
    });
    req.on('error', (error) => reject(new Error(`${method} ${target}: ${error.message}`)));
    req.end(body);
  });

const frameFor = (shape, index, size = PAYLOAD) => {
  const text = `${index} ${'x'.repeat(Math.max(0, size - String(index).length - 1))}`;
  return shape === 'nchan' ? text : `data: ${text}\n\n`;
};

const stats = async (server, channel = 'floor') => JSON.parse((await request(server, 'GET', `/stats?channel=${channel}`)).text);

async function until(predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

async function openAll(server, clients, channelPath, query) {
  let at = 0;
  const worker = async () => {
    while (at < clients.length) await clients[at++].open(server, channelPath, query);
  };
  await Promise.all(Array.from({ length: Math.min(OPENING, clients.length) }, worker));
}

async function measure(shape) {
  const server =
    shape === 'nchan' ? await startNchan() : await startWorkerd(...WORKERS[shape]);
  const hub = shape.startsWith('hub');
  const publishPath = shape === 'nchan' ? '/pub/floor' : '/publish';
  const streamPath = shape === 'nchan' ? '/sub/floor' : '/stream';
  const result = { shape, streams: STREAMS, events: EVENTS };
  try {
    const clients = Array.from({ length: STREAMS }, (_, i) => new Client(i, { tags: hub && KICKED(i) ? ['kick'] : [] }));
    const expected = new Set(clients);
    const idle = usage(server.process);
    const openStarted = performance.now();
    const opened = await Promise.race([
      openAll(server, clients, streamPath).then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), 30_000 + STREAMS * 5)),
    ]);
    if (!opened) throw new Error('streams did not open in time');
    const openMs = performance.now() - openStarted;
    const withStreams = usage(server.process);
    result.streams_opened_per_s = Math.round((STREAMS * 1000) / openMs);
    result.cpu_us_per_stream_opened = Math.round(((withStreams.cpuMs - idle.cpuMs) * 1000) / STREAMS);
    result.rss_kib_per_stream = Math.round((withStreams.rssKib - idle.rssKib) / STREAMS);

    // Event k is done when every expected stream has it.
    let waiting = -1;
    let pending = 0;
    let done = () => {};
    const onIndex = (client, index) => {
      if (index === waiting && expected.has(client) && --pending === 0) done();
    };
    for (const client of clients) client.onIndex = onIndex;
    const publishAndWait = async (index, size) => {
      waiting = index;
      pending = [...expected].filter((client) => client.next <= index).length;
      const all = new Promise((resolve) => {
        done = resolve;
        if (pending === 0) resolve();
      });
      const started = performance.now();
      await request(server, 'POST', publishPath, frameFor(shape, index, size));
      const arrived = await Promise.race([all.then(() => true), new Promise((r) => setTimeout(() => r(false), EVENT_TIMEOUT_MS))]);
      if (!arrived) {
        const missing = [...expected].filter((client) => client.next <= index);
        throw new Error(`event ${index} did not reach ${missing.length} streams in ${EVENT_TIMEOUT_MS} ms (e.g. stream ${missing[0].id})`);
      }
      return performance.now() - started;
    };

    const sendsBefore = shape === 'nchan' ? null : (await stats(server)).sends;
    const spans = [];
    const late = [];
    let victim;
    let bystander;
    const cpuBefore = usage(server.process).cpuMs;
    for (let index = 0; index < EVENTS; index++) {
      if (index === Math.floor(EVENTS / 2)) {
        // Half-way: two clients go away; for the hub, one of them is the one
        // whose stream holds the socket. Late streams (hub) join and catch up
        // from history.
        victim = hub ? clients.findLast((client) => client.owners > 0) : clients[0];
        if (!victim) throw new Error('no stream says it holds the socket');
        bystander = clients.find((client) => client !== victim && client.owners === 0 && client.tags.length === 0);
        for (const client of [victim, bystander]) {
          expected.delete(client);
          client.close();
        }
        if (hub) {
          for (let i = 0; i < LATE; i++) late.push(Object.assign(new Client(`late-${i}`, { after: 0 }), { onIndex }));
          await Promise.all(late.map((client) => client.open(server, streamPath)));
        }
      }
      spans.push(await publishAndWait(index));
    }
    const cpu = usage(server.process).cpuMs - cpuBefore;
    // Late streams receive every event too, half of them from history.
    const deliveries =
      spans.reduce((total, _, index) => total + (index < Math.floor(EVENTS / 2) ? STREAMS : STREAMS - 2), 0) + late.length * EVENTS;
    result.cpu_us_per_delivery = Number(((cpu * 1000) / deliveries).toFixed(1));
    spans.sort((a, b) => a - b);
    result.publish_to_last_delivery_ms = { p50: Number(quantile(spans, 0.5).toFixed(1)), p99: Number(quantile(spans, 0.99).toFixed(1)) };
    if (sendsBefore !== null) result.object_sends_per_event = Number((((await stats(server)).sends - sendsBefore) / EVENTS).toFixed(2));

    for (const client of clients) {
      if (client.errors.length) fail(shape, `stream ${client.id}: ${client.errors.slice(0, 3).join('; ')}`);
      if (client !== victim && client !== bystander && client.next !== EVENTS) fail(shape, `stream ${client.id} has ${client.next} of ${EVENTS} events`);
    }

    if (hub) await hubChecks(shape, server, clients, expected, late, [victim, bystander], result, publishAndWait);

    await new Promise((r) => setTimeout(r, 200));
    for (const client of [...clients, ...late]) client.close();
  } catch (error) {
    fail(shape, error.stack);
  } finally {
    await server.stop();
  }
  if (failures.some((failure) => failure.startsWith(`${shape}:`))) {
    for (const line of server.log.filter((line) => /error|exception/i.test(line)).slice(0, 10)) console.error(`  server log: ${line.slice(0, 300)}`);
  }
  const broken = server.log.filter((line) => LOG_FAILURES.some((pattern) => pattern.test(line)));
  for (const line of broken.slice(0, 5)) fail(shape, `server log: ${line.slice(0, 300)}`);
  if (broken.length > 5) fail(shape, `${broken.length - 5} more such lines in the server's log`);
  if (hub) {
    result.reattaches = server.log.filter((line) => /"floor":"reattach"/.test(line)).length;
    if (result.reattaches === 0) fail(shape, 'no hub attached again after the object restarted');
  }
  return result;
}

/** What sharing a socket must keep, checked on the hub after the measured events. */
async function hubChecks(shape, server, clients, expected, late, gone, result, publishAndWait) {
  const handedOver = clients.some((client) => !gone.includes(client) && client.owners > 0);
  if (!handedOver) fail(shape, 'no other stream took the socket after its owner left');
  result.owners_seen = clients.reduce((total, client) => total + client.owners, 0);

  const caughtUp = await until(() => late.every((client) => client.next === EVENTS), CHECK_TIMEOUT_MS);
  for (const client of late) {
    if (client.errors.length) fail(shape, `late stream ${client.id}: ${client.errors.slice(0, 3).join('; ')}`);
  }
  if (!caughtUp) fail(shape, `late streams have ${late.map((client) => client.next).join(',')} of ${EVENTS} events`);
  for (const client of late) expected.add(client);

  const counted = () => stats(server).then((s) => s.streams === expected.size);
  if (!(await until(counted, CHECK_TIMEOUT_MS))) {
    fail(shape, `stats count ${(await stats(server)).streams} streams, ${expected.size} are open`);
  }

  // A kick ends exactly the tagged streams, each with stream-error kicked.
  const tagged = clients.filter((client) => client.tags.includes('kick') && !gone.includes(client));
  await request(server, 'POST', '/kick?tag=kick');
  const kicked = await until(() => tagged.every((client) => client.ended), CHECK_TIMEOUT_MS);
  if (!kicked) fail(shape, `${tagged.filter((client) => !client.ended).length} of ${tagged.length} tagged streams outlived the kick`);
  for (const client of tagged) {
    if (client.endedWith !== 'kicked') fail(shape, `kicked stream ${client.id} ended with ${client.endedWith}`);
    expected.delete(client);
  }
  await new Promise((r) => setTimeout(r, 200));
  const wrongly = [...expected].filter((client) => client.ended);
  if (wrongly.length) fail(shape, `${wrongly.length} untagged streams ended at the kick (e.g. ${wrongly[0].id})`);
  if (!(await until(counted, CHECK_TIMEOUT_MS))) {
    fail(shape, `after the kick, stats count ${(await stats(server)).streams} streams, ${expected.size} are open`);
  }

  // The object restarts (as on a deploy or an eviction): its sockets close
  // under the Worker, which attaches again; nothing is lost or repeated.
  const restart = await request(server, 'POST', '/abort');
  if (restart.status === 204) fail(shape, 'the object did not restart');
  for (let index = EVENTS; index < EVENTS + AFTER_RESTART; index++) await publishAndWait(index);
  for (const client of expected) {
    if (client.next !== EVENTS + AFTER_RESTART) fail(shape, `after the restart, stream ${client.id} has ${client.next} events`);
    if (client.errors.length) fail(shape, `after the restart, stream ${client.id}: ${client.errors.slice(0, 3).join('; ')}`);
  }

  // A client that stops reading is closed as lagging; its neighbour goes on.
  const reader = new Client('lag-reader');
  const stalled = new Client('lag-stalled');
  await reader.open(server, '/stream', 'channel=lag');
  await stalled.open(server, '/stream', 'channel=lag');
  stalled.response.pause();
  if (!(await until(() => stats(server, 'lag').then((s) => s.streams === 2), CHECK_TIMEOUT_MS))) {
    fail(shape, 'the lagging check\'s two streams were never counted');
  }
  let published = 0;
  const dropped = () => stats(server, 'lag').then((s) => s.streams === 1);
  while (published < LAG_FRAMES_MAX && !(published % 20 === 0 && published > 0 && (await dropped()))) {
    await request(server, 'POST', '/publish?channel=lag', frameFor('hub', published++, LAG_FRAME));
  }
  stalled.response.resume();
  const settled = await until(() => stalled.ended && reader.next === published, CHECK_TIMEOUT_MS);
  result.lagging_closed_after_frames = stalled.next;
  if (!settled) fail(shape, `lagging check did not settle: reader ${reader.next}/${published}, stalled ended ${stalled.ended}`);
  if (stalled.endedWith !== 'lagging') fail(shape, `the stalled stream ended with ${stalled.endedWith}, not lagging`);
  for (const client of [reader, stalled]) {
    if (client.errors.length) fail(shape, `${client.id}: ${client.errors.slice(0, 3).join('; ')}`);
  }
  reader.close();
}

const watchdog = setTimeout(
  () => {
    console.error('FAIL: the run timed out');
    process.exit(1);
  },
  (120 + STREAMS * 0.2 + EVENTS * (10 + STREAMS / 100)) * 1000 * SHAPES.length,
);
watchdog.unref();

const results = [];
for (const shape of SHAPES) results.push(await measure(shape));
for (const result of results) console.log(JSON.stringify(result));
const columns = [
  ['shape', (r) => r.shape],
  ['CPU µs/delivery', (r) => r.cpu_us_per_delivery],
  ['RSS KiB/stream', (r) => r.rss_kib_per_stream],
  ['opened/s', (r) => r.streams_opened_per_s],
  ['CPU µs/open', (r) => r.cpu_us_per_stream_opened],
  ['p50 ms', (r) => r.publish_to_last_delivery_ms?.p50],
  ['p99 ms', (r) => r.publish_to_last_delivery_ms?.p99],
  ['sends/event', (r) => r.object_sends_per_event],
];
const rows = [columns.map(([name]) => name), ...results.map((r) => columns.map(([, get]) => String(get(r) ?? '-')))];
const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
for (const row of rows) console.log(row.map((cell, i) => cell.padStart(widths[i])).join('  '));
if (failures.length) {
  console.error(`${failures.length} failure(s)`);
  process.exit(1);
}
process.exit(0);
