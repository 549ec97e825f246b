// Runs the edgestream-bridge binary for tests and reads its metrics.
import { spawn } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { ROOT, TEST_SECRET } from './worker.mjs';
import { freePort } from './valkey.mjs';

/** The release binary that scripts/test builds; EDGESTREAM_BRIDGE_BIN overrides it. */
export const BRIDGE_BIN = process.env.EDGESTREAM_BRIDGE_BIN
  ? path.resolve(process.env.EDGESTREAM_BRIDGE_BIN)
  : path.join(ROOT, 'target/release/edgestream-bridge');

export function bridgeBuilt() {
  return fs.existsSync(BRIDGE_BIN);
}

/**
 * Starts the bridge against `valkeyUrl` and `edgeUrl`, minting tokens from
 * the test secret, with metrics on a free loopback port. `args` are extra
 * flags. Returns a handle with `metrics()`, `stop(signal)` and the log.
 */
export async function startBridge({ valkeyUrl, edgeUrl, args = [], env = {} }) {
  const metricsPort = await freePort();
  let log = '';
  const proc = spawn(BRIDGE_BIN, ['--metrics-addr', `127.0.0.1:${metricsPort}`, ...args], {
    env: {
      PATH: process.env.PATH,
      VALKEY_URL: valkeyUrl,
      EDGE_URL: edgeUrl,
      JWT_SECRET: TEST_SECRET,
      BRIDGE_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d) => {
    log = (log + d).slice(-50_000);
    if (process.env.EDGESTREAM_TEST_LOGS) process.stderr.write(`[bridge ${proc.pid}] ${d}`);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const handle = {
    proc,
    exited,
    log: () => log,
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
        throw new Error(`the bridge did not start: ${e.message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Sum of a metric over all label sets whose key starts with `prefix`. */
export function sum(metrics, prefix) {
  return Object.entries(metrics)
    .filter(([k]) => k === prefix || k.startsWith(`${prefix}{`))
    .reduce((n, [, v]) => n + v, 0);
}
