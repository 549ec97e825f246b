// Where workerd's memory for an open, idle stream goes: each variant of
// idle.js (and hub.js's streams: `hub`, and `hub-js` with script bodies) in a
// fresh workerd, N streams opened and
// left idle, then workerd's resident memory and V8 heap per stream; for variants with sockets, again once the channel
// object has hibernated (workerd evicts an idle object after ~10 s and keeps
// only its sockets).
//
//   node bench/floor/idle.mjs [--streams 2000] [--variants connection,pipe,...,hub]
//                             [--flags enable_request_signal,...]
import { Miniflare } from 'miniflare';
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const ALL = ['connection', 'pipe', 'pipe-hwm', 'js-stream', 'socket', 'socket-timer', 'sockets-only', 'hub', 'hub-js'];
const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '2000' },
    variants: { type: 'string', default: ALL.join(',') },
    flags: { type: 'string', default: 'enable_request_signal' },
  },
});
const STREAMS = Number(values.streams);
const FLAGS = values.flags ? values.flags.split(',') : [];
const HERE = import.meta.dirname;
const OPENING = 200;
const HIBERNATION_WAIT_MS = 15_000;
const SOCKETS_PER_HOLDER = 100;

const freePort = () =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** Resident memory (KiB) of this process's workerd. */
function rssKib() {
  let total = 0;
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (!stat.includes('(workerd)') || fields[1] !== String(process.pid)) continue;
      total += Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    } catch {
      // The process ended between listing and reading.
    }
  }
  return total;
}

/** workerd's inspector for the worker: V8's heap size. */
async function inspector(port) {
  let ws;
  for (let attempt = 0; ; attempt++) {
    await new Promise((r) => setTimeout(r, 300));
    try {
      ws = new WebSocket(`ws://127.0.0.1:${port}/idle`, { headers: { Origin: 'http://localhost' } });
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      break;
    } catch (error) {
      if (attempt > 30) throw error;
    }
  }
  let id = 0;
  const pending = new Map();
  ws.on('message', (raw) => {
    const message = JSON.parse(raw.toString());
    pending.get(message.id)?.(message.result);
    pending.delete(message.id);
  });
  const call = (method) =>
    new Promise((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method }));
    });
  return {
    // workerd's inspector does not answer HeapProfiler.collectGarbage; the
    // heap is read as it is after the streams have been idle for a while.
    async heapKib() {
      return (await call('Runtime.getHeapUsage')).usedSize / 1024;
    },
    close: () => ws.close(),
  };
}

async function measure(variant) {
  const inspectorPort = await freePort();
  const mf = new Miniflare({
    inspectorPort,
    workers: [
      {
        name: 'idle',
        modules: true,
        scriptPath: path.join(HERE, variant.startsWith('hub') ? 'hub.js' : 'idle.js'),
        bindings: variant === 'hub-js' ? { BODY: 'js' } : {},
        compatibilityDate: '2026-04-20',
        compatibilityFlags: FLAGS,
        durableObjects: { CHANNEL: { className: 'Channel', useSQLite: true } },
        unsafeInspectorProxy: true,
        unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
      },
    ],
    cf: false,
    handleRuntimeStdio() {},
  });
  await mf.ready;
  const url = await mf.unsafeGetDirectURL('idle');
  const probe = await inspector(inspectorPort);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const openOne = () =>
    new Promise((resolve, reject) => {
      http
        .get(new URL(`/stream?variant=${variant}`, url), { agent }, (response) => {
          response.once('data', () => resolve(response));
          response.resume();
        })
        .on('error', reject);
    });
  const requests = variant === 'sockets-only' ? Math.ceil(STREAMS / SOCKETS_PER_HOLDER) : STREAMS;
  const before = { rss: rssKib(), heap: await probe.heapKib() };
  let opened = 0;
  await Promise.all(
    Array.from({ length: Math.min(OPENING, requests) }, async () => {
      while (opened++ < requests) await openOne();
    }),
  );
  await new Promise((r) => setTimeout(r, 2000));
  const perStream = (now) => ({
    rss_kib: Number(((now.rss - before.rss) / STREAMS).toFixed(1)),
    v8_heap_kib: Number(((now.heap - before.heap) / STREAMS).toFixed(1)),
  });
  const result = { variant, streams: STREAMS, flags: FLAGS.join(' ') || '-', ...perStream({ rss: rssKib(), heap: await probe.heapKib() }) };
  if (variant.startsWith('socket')) {
    await new Promise((r) => setTimeout(r, HIBERNATION_WAIT_MS));
    const hibernated = perStream({ rss: rssKib(), heap: await probe.heapKib() });
    result.after_hibernation = hibernated;
  }
  probe.close();
  agent.destroy();
  await mf.dispose();
  return result;
}

for (const variant of values.variants.split(',')) console.log(JSON.stringify(await measure(variant)));
process.exit(0);
