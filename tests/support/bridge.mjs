// Runs the edgestream-bridge binary for tests, reads its metrics and logs, and
// holds the delivery checks the bridge tests share (exactly once, in order).
import { spawn } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { ROOT, TEST_SECRET } from './worker.mjs';
import { freePort } from './valkey.mjs';

/**
 * The binary the bridge tests run: EDGESTREAM_BRIDGE_BIN (scripts/test sets it
 * to the static build users deploy), else `cargo build --release`'s.
 */
export const BRIDGE_BIN = process.env.EDGESTREAM_BRIDGE_BIN
  ? path.resolve(ROOT, process.env.EDGESTREAM_BRIDGE_BIN)
  : path.join(ROOT, 'target/release/edgestream-bridge');

/** The static (musl) binary that `bash bridge/build-static` builds. */
export const STATIC_BIN = path.join(ROOT, 'target/x86_64-unknown-linux-musl/release/edgestream-bridge');

export function bridgeBuilt() {
  return fs.existsSync(BRIDGE_BIN);
}

/** The default credential: tokens minted from the test secret (the local stack's way). */
export const MINTED = { JWT_SECRET: TEST_SECRET };

function launch({ bin = BRIDGE_BIN, valkeyUrl, edgeUrl, args = [], env = {}, credential = MINTED }) {
  let log = '';
  const proc = spawn(bin, args, {
    env: {
      PATH: process.env.PATH,
      VALKEY_URL: valkeyUrl,
      EDGE_URL: edgeUrl,
      BRIDGE_LOG_LEVEL: 'info',
      ...credential,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d) => {
    log = (log + d).slice(-200_000);
    if (process.env.EDGESTREAM_TEST_LOGS) process.stderr.write(`[bridge ${proc.pid}] ${d}`);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return { proc, exited, log: () => log };
}

/** The bridge's log lines, parsed (it writes one JSON object per line). */
export function parseLog(text) {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { unparsed: l };
      }
    });
}

/**
 * Starts the bridge against `valkeyUrl` and `edgeUrl`, with metrics on a
 * free port (on loopback unless `metricsHost` says otherwise). `credential`
 * is the environment that carries it (default: minted from the test
 * secret); `args` are extra flags. Returns a handle with `metrics()`,
 * `stop(signal)`, `log()` and `lines()`.
 */
export async function startBridge({ valkeyUrl, edgeUrl, args = [], env = {}, credential, bin, metricsHost = '127.0.0.1' } = {}) {
  const metricsPort = await freePort();
  const { proc, exited, log } = launch({
    bin,
    valkeyUrl,
    edgeUrl,
    args: ['--metrics-addr', `${metricsHost}:${metricsPort}`, ...args],
    env,
    credential,
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const handle = {
    proc,
    exited,
    log,
    lines: () => parseLog(log()),
    metricsPort,
    /** The metrics as {'name{labels}': value}. */
    async metrics() {
      const res = await fetch(metricsUrl);
      const text = await res.text();
      const out = {};
      for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const i = line.lastIndexOf(' ');
        out[line.slice(0, i)] = Number(line.slice(i + 1));
      }
      return out;
    },
    /** Sends `signal` and waits for the exit (SIGKILL after `graceMs`). */
    async stop(signal = 'SIGTERM', graceMs = 15_000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        const result = await exited;
        clearTimeout(timer);
        return result;
      }
      return exited;
    },
  };
  // Ready once the metrics endpoint answers.
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await handle.metrics();
      return handle;
    } catch (e) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`the bridge did not start: ${e.message}\n${log()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Runs the bridge in a configuration it should refuse and waits for it to
 * exit (SIGKILL after `timeoutMs`, which the result then shows). Returns
 * {code, signal, ms, log, lines}.
 */
export async function runBridgeToExit({ valkeyUrl, edgeUrl, args = [], env = {}, credential, bin, timeoutMs = 20_000 }) {
  const started = Date.now();
  const { proc, exited, log } = launch({ bin, valkeyUrl, edgeUrl, args, env, credential });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await exited;
  clearTimeout(timer);
  return { code, signal, ms: Date.now() - started, log: log(), lines: parseLog(log()) };
}

/** Sum of a metric over all label sets whose key starts with `prefix`. */
export function sum(metrics, prefix) {
  return Object.entries(metrics)
    .filter(([k]) => k === prefix || k.startsWith(`${prefix}{`))
    .reduce((n, [, v]) => n + v, 0);
}

/** A metric's value for one label set (0 when absent). */
export function metric(m, name, labels) {
  return labels === undefined ? m[name] ?? 0 : m[`${name}{${labels}}`] ?? 0;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate` every 50 ms until it returns something truthy, which is returned. */
export async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * XADDs `count` events per channel, data `{"c": channel index, "n": i}` in
 * order, in pipelined chunks; `afterChunk(i)` runs after each chunk.
 */
export async function produce(redis, stream, channels, count, { chunk = 50, pauseMs = 0, from = 0, afterChunk } = {}) {
  for (let start = from, i = 0; start < from + count; start += chunk, i++) {
    const writes = [];
    for (let n = start; n < Math.min(from + count, start + chunk); n++) {
      channels.forEach((channel, c) => {
        writes.push(redis.command('XADD', stream, '*', 'channel', channel, 'event', 'seq', 'data', JSON.stringify({ c, n })));
      });
    }
    await Promise.all(writes);
    await afterChunk?.(i);
    if (pauseMs) await sleep(pauseMs);
  }
}

/** The `n`s each channel received, in arrival order, from events with data `{c, n}`. */
export function sequences(sub, channels) {
  const byChannel = new Map(channels.map((c) => [c, []]));
  for (const e of sub.data()) {
    const { c, n } = JSON.parse(e.data);
    assert.ok(channels[c], `event for an unknown channel: ${e.data}`);
    byChannel.get(channels[c]).push(n);
  }
  return byChannel;
}

/** Asserts that each channel received exactly `expected(channel)` (default `0..count-1`), in order, once. */
export function assertExactlyOnceInOrder(sub, channels, count, expected = () => Array.from({ length: count }, (_, i) => i)) {
  for (const [channel, ns] of sequences(sub, channels)) {
    const want = expected(channel);
    if (ns.length !== want.length || ns.some((n, i) => n !== want[i])) {
      const dupes = ns.filter((n, i) => ns.indexOf(n) !== i).slice(0, 10);
      const missing = want.filter((n) => !ns.includes(n)).slice(0, 10);
      assert.fail(`${channel}: ${ns.length} events, duplicates ${dupes}, missing ${missing}, first out of order at ${ns.findIndex((n, i) => n !== want[i])}`);
    }
  }
}

/** A Streams entry's fields as an object. */
export const fieldsOf = (entry) => Object.fromEntries(entry[1].flatMap((v, i, a) => (i % 2 ? [] : [[v, a[i + 1]]])));
