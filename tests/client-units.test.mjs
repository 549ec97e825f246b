// The typed client's decisions, without a network: the event-stream parser,
// reconnect delays, cursors and how a tab catches up with the leader.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertClientBuilt } from './support/client.mjs';
import { channelOf, newTenant } from './support/tokens.mjs';
import { cursorOf } from './support/http.mjs';

assertClientBuilt();
const { EdgestreamClient, parseCursor, formatCursor, jwtExpiry } = await import('edgestream/client');
const { SseParser } = await import('../client/dist/sse.js');
const { reconnectDelay, retryAfterMs, isRetryable } = await import('../client/dist/retry.js');
const { catchUp } = await import('../client/dist/tabs.js');

/** Parses `chunks` fed one by one; returns the events and retry values seen. */
function parseAll(chunks) {
  const events = [];
  const retries = [];
  const parser = new SseParser((e) => events.push(e), (ms) => retries.push(ms));
  for (const chunk of chunks) parser.push(chunk);
  return { events, retries };
}

describe('event-stream parser', () => {
  it('reads the relay frames, whatever the chunking and line endings', () => {
    const stream =
      'retry: 3000\n\nevent: stream-open\ndata: {"channels":["a"]}\n\n: keep-alive\n\nid: a:1\nevent: scan.progress\ndata: {"pct":1}\n\n';
    const expected = [
      { type: 'stream-open', data: '{"channels":["a"]}', id: '' },
      { type: 'scan.progress', data: '{"pct":1}', id: 'a:1' },
    ];
    for (const eol of ['\n', '\r\n', '\r']) {
      const text = stream.replace(/\n/g, eol);
      // Whole, one character at a time, and split in every place.
      assert.deepEqual(parseAll([text]).events, expected, JSON.stringify(eol));
      assert.deepEqual(parseAll([...text]).events, expected, JSON.stringify(eol));
      for (let i = 1; i < text.length; i++) {
        const { events, retries } = parseAll([text.slice(0, i), text.slice(i)]);
        assert.deepEqual(events, expected, `${JSON.stringify(eol)} split at ${i}`);
        assert.deepEqual(retries, [3000]);
      }
    }
  });

  it('follows the standard on the corners', () => {
    const { events, retries } = parseAll([
      // Several data lines; no space after the colon; the id carries over to the next event.
      'id: x:1\ndata: one\ndata:two\n\n',
      'data\n\n',
      // A frame without data dispatches nothing and forgets its type.
      'event: lost\n\ndata: after\n\n',
      // Bad retry values and an id with NUL are ignored; unknown fields too.
      'retry: 1e3\nretry: -5\nid: bad\0id\nfoo: bar\ndata: kept\n\n',
      // An incomplete frame at the end is not dispatched.
      'data: partial\n',
    ]);
    assert.deepEqual(events, [
      { type: 'message', data: 'one\ntwo', id: 'x:1' },
      { type: 'message', data: '', id: 'x:1' },
      { type: 'message', data: 'after', id: 'x:1' },
      { type: 'message', data: 'kept', id: 'x:1' },
    ]);
    assert.deepEqual(retries, []);
  });
});

describe('reconnect delays', () => {
  const low = () => 0;
  const high = () => 0.999999;

  it('doubles per failure up to the cap, spread over half as much again, never below the floor', () => {
    assert.equal(reconnectDelay({ baseMs: 1000, failures: 0, maxMs: 30_000 }, low), 1000);
    assert.equal(reconnectDelay({ baseMs: 1000, failures: 0, maxMs: 30_000 }, high), 1500);
    assert.equal(reconnectDelay({ baseMs: 1000, failures: 3, maxMs: 30_000 }, low), 8000);
    assert.equal(reconnectDelay({ baseMs: 1000, failures: 10, maxMs: 30_000 }, low), 30_000);
    assert.equal(reconnectDelay({ baseMs: 1000, failures: 5000, maxMs: 30_000 }, high), 45_000);
    // Retry-After replaces the computed wait, even past the cap.
    assert.equal(reconnectDelay({ baseMs: 1000, failures: 9, maxMs: 30_000, retryAfterMs: 120_000 }, low), 120_000);
    assert.equal(reconnectDelay({ baseMs: 1000, failures: 0, maxMs: 30_000, retryAfterMs: 2000 }, high), 3000);
  });

  it('spreads a crowd of clients over the window', () => {
    const delays = Array.from({ length: 1000 }, () => reconnectDelay({ baseMs: 3000, failures: 0, maxMs: 30_000 }));
    assert.ok(delays.every((d) => d >= 3000 && d <= 4500));
    assert.ok(new Set(delays.map((d) => Math.floor(d / 100))).size >= 14, 'spread over the whole window');
  });

  it('reads Retry-After as seconds or a date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(retryAfterMs('7', now), 7000);
    assert.equal(retryAfterMs(' 0 ', now), 0);
    assert.equal(retryAfterMs('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
    assert.equal(retryAfterMs('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
    assert.equal(retryAfterMs('soon', now), undefined);
    assert.equal(retryAfterMs('-1', now), undefined);
    assert.equal(retryAfterMs(null, now), undefined);
  });

  it('retries passing refusals only', () => {
    for (const status of [401, 408, 425, 429, 500, 502, 503, 504]) assert.equal(isRetryable(status), true, status);
    for (const status of [400, 403, 404, 405, 410, 413, 414, 422]) assert.equal(isRetryable(status), false, status);
  });
});

describe('cursors', () => {
  it("rebuilds the relay's own ids from positions", () => {
    const tenant = newTenant();
    const [a, b] = [channelOf(tenant, 'a'), channelOf(tenant, 'b.x_y-1')];
    const id = cursorOf([[a, 3], [b, 0]]);
    assert.deepEqual(parseCursor(id), [[a, 3], [b, 0]]);
    assert.equal(formatCursor([a, b], new Map(parseCursor(id))), id);
    // In the stream's order, and only channels with a position.
    assert.equal(formatCursor([b, a], new Map([[a, 3]])), cursorOf([[a, 3]]));
    assert.equal(formatCursor([a], new Map()), undefined);
    assert.throws(() => parseCursor('no-sequence'), /malformed/);
    assert.throws(() => parseCursor('a:-1'), /malformed/);
  });
});

describe('a tab catching up with the leader', () => {
  const event = (channel, seq, after, type = 'scan.progress') => ({ t: 'event', type, data: '{}', id: `${channel}:${seq}`, channel, seq, after });
  // The leader delivered a:1..5 (types alternating), b never had an event.
  const recent = [1, 2, 3, 4, 5].map((seq, i) => [i + 1, event('a', seq, seq - 1, seq % 2 ? 'x.odd' : 'x.even')]);
  const sync = { positions: [['a', 5], ['b', 0]], recent, latest: [recent[3], recent[4]] };

  it('a tab that never saw a channel gets its current state', () => {
    const plan = catchUp(new Map(), sync);
    assert.deepEqual(plan.frames.map((f) => f.seq), [4, 5]);
    assert.deepEqual(plan.reset, []);
    assert.deepEqual(plan.positions, [['a', 5], ['b', 0]]);
  });

  it('a tab behind gets exactly what it missed, when the leader still has it', () => {
    const plan = catchUp(new Map([['a', 2]]), sync);
    assert.deepEqual(plan.frames.map((f) => f.seq), [3, 4, 5]);
    assert.deepEqual(plan.reset, []);
  });

  it('a gap the leader cannot fill is a reset, then the current state', () => {
    const plan = catchUp(new Map([['a', 2]]), { ...sync, recent: recent.slice(3) });
    assert.deepEqual(plan.reset, ['a']);
    assert.deepEqual(plan.frames.map((f) => f.seq), [4, 5]);
  });

  it('a tab in step or ahead gets nothing', () => {
    assert.deepEqual(catchUp(new Map([['a', 5]]), sync).frames, []);
    const ahead = catchUp(new Map([['a', 7]]), sync);
    assert.deepEqual([ahead.frames, ahead.reset, ahead.positions], [[], [], [['a', 7], ['b', 0]]]);
  });
});

describe('client options', () => {
  it('reads JWT expiry and refuses bad options', () => {
    const payload = Buffer.from(JSON.stringify({ exp: 1234567890 })).toString('base64url');
    assert.equal(jwtExpiry(`e30.${payload}.sig`), 1234567890);
    assert.equal(jwtExpiry('opaque-ticket'), undefined);
    assert.equal(jwtExpiry('a.!!!.c'), undefined);
    const channel = channelOf(newTenant());
    assert.throws(() => new EdgestreamClient({ url: 'http://127.0.0.1:9', channels: [], getToken: () => 't' }), /channel/);
    assert.throws(() => new EdgestreamClient({ url: 'http://127.0.0.1:9', channels: [channel] }), /getToken/);
    assert.throws(
      () => new EdgestreamClient({ url: 'http://127.0.0.1:9', channels: [channel], getToken: () => 't', fetch: null, lastEventId: 'bad' }),
      /malformed/,
    );
  });
});
