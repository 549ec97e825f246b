// Measures how fast a resuming stream replays history (events/s from the
// channel's SQLite history into one stream) and what an event costs in
// Durable Object storage, on workerd directly.
//
//   node bench/replay.mjs [--events 1000] [--bytes 100] [--runs 5]
import { parseArgs } from 'node:util';
import { startWorker } from '../tests/support/worker.mjs';
import { publisher, subscriber, newTenant, channelOf } from '../tests/support/tokens.mjs';
import { publish, readRaw, streamUrl } from '../tests/support/sse.mjs';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000' },
    bytes: { type: 'string', default: '100' },
    runs: { type: 'string', default: '5' },
  },
});
const events = Number(values.events);
const bytes = Number(values.bytes);
const runs = Number(values.runs);

const worker = await startWorker({ vars: { HISTORY_SIZE: String(Math.max(events, 1000)) } });
try {
  const tenant = newTenant();
  const channel = channelOf(tenant);
  const ns = await worker.mf.getDurableObjectNamespace('CHANNELS');
  const stats = async () => (await ns.get(ns.idFromName(channel)).fetch('https://channel/stats')).json();

  const pub = await publisher(tenant);
  await publish(worker.url, pub, { channel, event: 'warm.up', data: 0 });
  const before = await stats();
  const filler = 'x'.repeat(Math.max(0, bytes - 20));
  for (let i = 1; i <= events; i += 100) {
    const batch = [];
    for (let n = i; n < i + 100 && n <= events; n++) batch.push({ channel, event: 'scan.progress', data: { n, filler } });
    const res = await publish(worker.url, pub, { events: batch });
    if (res.status !== 202) throw new Error(`publish failed: ${res.text}`);
  }
  const after = await stats();
  const perEvent = (after.storage_bytes - before.storage_bytes) / events;

  const token = await subscriber(tenant);
  const rates = [];
  for (let run = 0; run < runs; run++) {
    const started = performance.now();
    const { text } = await readRaw(streamUrl(worker.url, [channel], { lastEventId: `${encodeURIComponent(channel)}:1` }), {
      headers: { Authorization: `Bearer ${token}` },
      done: (t) => t.includes(`"n":${events},`),
      timeoutMs: 60_000,
    });
    const elapsed = (performance.now() - started) / 1000;
    const received = (text.match(/^event: scan\.progress$/gm) ?? []).length;
    if (received !== events) throw new Error(`run ${run}: received ${received} of ${events}`);
    rates.push(events / elapsed);
  }
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)];
  console.log(JSON.stringify({
    events,
    data_bytes: bytes,
    replay_events_per_second_median: Math.round(median),
    replay_events_per_second_runs: rates.map(Math.round),
    storage_bytes_per_event: Math.round(perEvent),
    database_bytes: after.storage_bytes,
  }, null, 2));
} finally {
  await worker.stop();
}
