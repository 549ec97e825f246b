// Assertions and small HTTP helpers shared by the integration tests.
import assert from 'node:assert/strict';
import { streamUrl } from './sse.mjs';

export const PROBLEM_TYPE = 'application/problem+json';

/**
 * Asserts that `res` is an RFC 9457 problem with this status and `code`, and
 * returns its body. A 401 must carry a Bearer challenge; `error` is the
 * challenge's expected `error` attribute (none when undefined).
 */
export async function assertProblem(res, status, code, { error, text } = {}) {
  const body = text ?? (await res.text());
  const context = `${res.status} ${body.slice(0, 300)}`;
  assert.equal(res.status, status, `status: ${context}`);
  assert.equal(res.headers.get('content-type')?.split(';')[0].trim(), PROBLEM_TYPE, `content-type: ${context}`);
  let json;
  assert.doesNotThrow(() => {
    json = JSON.parse(body);
  }, `problem body is not JSON: ${body.slice(0, 300)}`);
  assert.equal(json.code, code, `code: ${context}`);
  assert.equal(json.status, status, `body status: ${context}`);
  assert.equal(typeof json.title, 'string', `title: ${context}`);
  if (status === 401) assertChallenge(res, error);
  return json;
}

/** Asserts a `WWW-Authenticate: Bearer ...` challenge with the given `error` attribute, or none. */
export function assertChallenge(res, error) {
  const challenge = res.headers.get('www-authenticate');
  assert.ok(challenge, 'a 401 carries WWW-Authenticate');
  assert.match(challenge, /^Bearer(\s|$)/, `challenge scheme: ${challenge}`);
  if (error === undefined) {
    assert.doesNotMatch(challenge, /error=/, `no error attribute without credentials: ${challenge}`);
  } else {
    assert.match(challenge, new RegExp(`error="${error}"`), `challenge error: ${challenge}`);
  }
}

/**
 * Opens `GET /v1/stream` and returns as soon as the status and headers are
 * known: a 200 stream is aborted at once, any other response is read in full.
 * Returns {status, headers, text, res}.
 */
export async function openStream(base, channels, { token, headers = {}, query = {}, rawQuery } = {}) {
  let url = streamUrl(base, channels, query);
  if (rawQuery !== undefined) url = `${new URL('/v1/stream', base)}?${rawQuery}`;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  try {
    const res = await fetch(url, {
      headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers },
      signal: controller.signal,
    });
    let text = '';
    if (res.status !== 200) text = await res.text();
    return { status: res.status, headers: res.headers, text, res };
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/** Asserts that a stream opened (200, event stream) and returns the result of `openStream`. */
export async function assertStreamOpens(base, channels, options) {
  const r = await openStream(base, channels, options);
  assert.equal(r.status, 200, `expected the stream to open, got ${r.status} ${r.text.slice(0, 300)}`);
  assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
  return r;
}

/** Python's `urllib.parse.quote(s, safe='/')`, as django-eventstream encodes channels in ids. */
export function quote(s) {
  let out = '';
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.\-~/]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The event id of a stream over `channels` at the given positions (`[[channel, seq], ...]`). */
export const cursorOf = (positions) => positions.map(([channel, seq]) => `${quote(channel)}:${seq}`).join(',');

/**
 * Splits raw `text/event-stream` text into frames (blocks ended by a blank
 * line). Each frame is {fields: [[name, value], ...], comments: [...]}; a
 * trailing incomplete block is ignored.
 */
export function parseFrames(text) {
  const blocks = text.replace(/\r\n?/g, '\n').split('\n\n');
  blocks.pop();
  return blocks
    .filter((b) => b.length > 0)
    .map((block) => {
      const fields = [];
      const comments = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          comments.push(line.slice(1).replace(/^ /, ''));
          continue;
        }
        const at = line.indexOf(':');
        const name = at < 0 ? line : line.slice(0, at);
        const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
        fields.push([name, value]);
      }
      return { fields, comments };
    });
}

/** The value of a frame's field (the last one if repeated), or undefined. */
export function field(frame, name) {
  const found = frame.fields.filter(([n]) => n === name);
  return found.length ? found[found.length - 1][1] : undefined;
}

/** Frames that are events (have a data field), as {id, event, data}. */
export function eventsOf(text) {
  return parseFrames(text)
    .filter((f) => f.fields.some(([n]) => n === 'data'))
    .map((f) => ({
      id: field(f, 'id'),
      event: field(f, 'event'),
      data: f.fields.filter(([n]) => n === 'data').map(([, v]) => v).join('\n'),
    }));
}

/** Number of complete event frames (with data) in the raw text. */
export const countEvents = (text) => eventsOf(text).length;

/**
 * A raw stream reader that keeps reading in the background: `until(pred)`
 * waits (bounded) for the text read so far to satisfy `pred`; `ended` tells
 * whether the server closed the stream; `close()` aborts it.
 */
export async function rawStream(url, { headers = {}, timeoutMs = 10_000 } = {}) {
  const controller = new AbortController();
  const connectTimer = setTimeout(() => controller.abort(), timeoutMs);
  let res;
  try {
    res = await fetch(url, { headers, signal: controller.signal });
  } finally {
    clearTimeout(connectTimer);
  }
  const state = { text: '', ended: false, error: undefined };
  const waiters = new Set();
  const notify = () => {
    for (const w of waiters) w();
  };
  const pump = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        state.text += decoder.decode(value, { stream: true });
        notify();
      }
      state.ended = true;
    } catch (e) {
      if (e.name !== 'AbortError') state.error = e;
    } finally {
      notify();
    }
  })();
  const until = (predicate, ms = 10_000, what = 'condition') =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (predicate(state.text)) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(state.text);
        } else if (state.ended || state.error) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`stream ended before ${what}; read ${JSON.stringify(state.text).slice(0, 2000)}`));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; read ${JSON.stringify(state.text).slice(0, 2000)}`));
      }, ms);
      waiters.add(check);
      check();
    });
  /** Waits for the server to end the stream (bounded). */
  const end = (ms = 10_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for the stream to end; read ${JSON.stringify(state.text).slice(0, 2000)}`));
      }, ms);
      const check = () => {
        if (state.ended || state.error) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(state.text);
        }
      };
      waiters.add(check);
      check();
    });
  return {
    res,
    get text() {
      return state.text;
    },
    get ended() {
      return state.ended;
    },
    until,
    end,
    opened: () => until((t) => /event: stream-open\n(data:[^\n]*\n)+\n/.test(t), 10_000, 'stream-open'),
    close: async () => {
      controller.abort();
      await pump;
    },
  };
}

/**
 * `GET /v1/channels/{channel}` with a credential of the channel's tenant
 * (a fresh subscriber token of its tenant by default).
 */
export async function channelStats(base, channel, credential) {
  const { subscriber } = await import('./tokens.mjs');
  const auth = credential ?? `Bearer ${await subscriber(channel.split(':')[1])}`;
  const res = await fetch(new URL(`/v1/channels/${encodeURIComponent(channel)}`, base), { headers: { Authorization: auth } });
  if (res.status !== 200) throw new Error(`channel stats: ${res.status} ${await res.text()}`);
  return res.json();
}
