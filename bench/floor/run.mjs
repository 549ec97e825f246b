// Measures bench/floor/worker.js in workerd (miniflare's API, the worker's
// own socket): N streams, then events published one at a time, each to every
// stream. Prints workerd's CPU per delivery, the time from publishing an
// event to its last delivery, and the set-up and memory of a stream.
//
//   node bench/floor/run.mjs [--streams 1000] [--events 100]
import { Miniflare } from 'miniflare';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { streams: { type: 'string', default: '1000' }, events: { type: 'string', default: '100' } },
});
const streams = Number(values.streams);
const events = Number(values.events);

const mf = new Miniflare({
  modules: true,
  scriptPath: path.join(import.meta.dirname, 'worker.js'),
  compatibilityDate: '2026-04-20',
  durableObjects: { CHANNEL: { className: 'Channel', useSQLite: true } },
  unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
});
await mf.ready;
const url = await mf.unsafeGetDirectURL();
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

/** workerd's CPU (user + system, ms) and resident memory (MiB). */
function workerd() {
  let ticks = 0;
  let rssKib = 0;
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('workerd')) continue;
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      rssKib += Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    } catch {
      // The process ended between listing and reading.
    }
  }
  return { cpuMs: ticks * 10, rssMib: rssKib / 1024 };
}

let delivered = 0;
let onDelivered = () => {};
const beforeStreams = workerd();
const openStarted = performance.now();
await Promise.all(
  Array.from(
    { length: streams },
    () =>
      new Promise((opened) => {
        http.get(new URL('/stream', url), { agent }, (response) => {
          response.once('data', () => {
            opened();
            response.on('data', (chunk) => {
              delivered += chunk.toString().split('\n\n').length - 1;
              onDelivered();
            });
          });
        });
      }),
  ),
);

const openMs = performance.now() - openStarted;
const withStreams = workerd();

const publish = (body) =>
  new Promise((done) => {
    const request = http.request(new URL('/publish', url), { method: 'POST', agent }, (response) => {
      response.resume();
      response.on('end', done);
    });
    request.end(body);
  });
const frame = `data: ${'x'.repeat(128)}\n\n`;
const spans = [];
const cpuBefore = workerd().cpuMs;
for (let event = 0; event < events; event++) {
  const target = delivered + streams;
  const started = performance.now();
  const all = new Promise((resolve) => {
    onDelivered = () => delivered >= target && resolve();
  });
  await publish(frame);
  await all;
  spans.push(performance.now() - started);
}
const cpu = workerd().cpuMs - cpuBefore;
spans.sort((a, b) => a - b);
const at = (q) => spans[Math.min(spans.length - 1, Math.floor(q * spans.length))].toFixed(1);
console.log(
  JSON.stringify({
    streams,
    events,
    workerd_cpu_us_per_delivery: Number(((cpu * 1000) / (streams * events)).toFixed(1)),
    publish_to_last_delivery_ms: { p50: Number(at(0.5)), p99: Number(at(0.99)) },
    streams_opened_per_s: Math.round((streams * 1000) / openMs),
    workerd_cpu_us_per_stream_opened: Math.round(((withStreams.cpuMs - beforeStreams.cpuMs) * 1000) / streams),
    workerd_rss_kib_per_stream: Math.round(((withStreams.rssMib - beforeStreams.rssMib) * 1024) / streams),
  }),
);
await mf.dispose();
process.exit(0);
