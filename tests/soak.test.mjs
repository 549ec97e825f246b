// A short soak run (scripts/soak.mjs) as part of the suite: two minutes of
// the whole stack under the seeded schedule, with the run's own accounting
// asserted here, and every kind of stream ending the schedule provokes seen
// at least once, so a run that skipped a part cannot pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './support/worker.mjs';
import { bridgeBuilt, BRIDGE_BIN } from './support/bridge.mjs';

const MINUTES = process.env.EDGESTREAM_SOAK_MINUTES ?? '2';

test('soak: every acknowledged event reaches every subscriber once and in order, and the bridge\'s memory stays flat', { timeout: 10 * 60_000 }, async () => {
  assert.ok(bridgeBuilt(), `${BRIDGE_BIN} is missing: run cargo build --release -p edgestream-bridge`);
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts/soak.mjs'), '--minutes', MINUTES, '--seed', '7'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-20_000);
    if (process.env.EDGESTREAM_TEST_LOGS) process.stderr.write(d);
  });
  const code = await new Promise((resolve) => child.once('exit', resolve));
  const lines = stdout.split('\n').filter((l) => l.trim());
  assert.equal(lines.length, 1, `one summary line on stdout, got:\n${stdout.slice(0, 2000)}\n${stderr}`);
  const s = JSON.parse(lines[0]);
  const context = `${lines[0].slice(0, 4000)}\n${stderr.slice(-4000)}`;

  assert.deepEqual(
    [s.events.lost, s.events.duplicated, s.events.out_of_order, s.events.stale_state, s.streams.resets],
    [0, 0, 0, 0, 0],
    `lost, duplicated, out of order, stale state, resets: ${context}`,
  );
  assert.deepEqual(s.failures, [], context);
  assert.equal(code, 0, `exit status: ${context}`);
  assert.equal(s.ok, true);

  // Every source published and was acknowledged, and subscribers expected and got it.
  for (const source of ['http', 'streams', 'pubsub']) assert.ok(s.events.by_source[source] > 0, `${source}: ${context}`);
  assert.ok(s.events.expected > 1000, `expected deliveries: ${context}`);
  assert.ok(s.events.delivered >= s.events.expected, context);
  assert.ok(s.publish.http.replays > 0 && s.publish.http.replay_not_deduplicated === 0, `idempotent replays: ${context}`);

  // Each way a stream ends happened, and the clients came back from it.
  for (const cause of ['client_left', 'client_drop', 'token_expired', 'kicked', 'lagging']) {
    assert.ok(s.streams.ended[cause] > 0, `streams ended by ${cause}: ${context}`);
  }
  assert.ok(s.lagging.cut >= 1 && s.lagging.not_cut === 0, `lag episodes: ${context}`);
  assert.ok(s.kicks.user > 0 && s.kicks.tenant > 0, `kicks: ${context}`);

  // Memory within the run's stated bound (the run fails on it too), where
  // the run is long enough to judge it: the bridge always, workerd from ten
  // minutes on, past its warm-up.
  for (const name of ['workerd', 'bridge']) {
    const m = s.memory[name];
    assert.ok(m.three_quarters_kib > 0 && m.end_kib > 0, `${name} memory sampled: ${context}`);
    if (m.judged) assert.ok(m.growth_kib <= m.allowed_growth_kib, `${name} memory: ${context}`);
  }
  assert.ok(s.memory.bridge.judged, `the bridge's memory is judged in every run: ${context}`);
});
