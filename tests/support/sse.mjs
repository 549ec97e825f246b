// SSE clients for tests: the npm `eventsource` client (a real EventSource that
// reconnects and sends Last-Event-ID by itself) and a raw reader for
// frame-level assertions.
import net from 'node:net';
import { EventSource } from 'eventsource';

export const RELAY_EVENTS = ['stream-open', 'stream-reset', 'stream-error'];

export function streamUrl(base, channels, query = {}) {
  const url = new URL('/v1/stream', base);
  for (const c of channels) url.searchParams.append('channel', c);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  return url.toString();
}

/**
 * Opens an EventSource and records every event of the given types, in order,
 * as {type, id, data}. `token` goes in the Authorization header unless
 * `viaQuery` is set.
 */
export function subscribe(base, channels, { token, viaQuery = false, types = [], query = {} } = {}) {
  const q = { ...query };
  if (token && viaQuery) q.access_token = token;
  const headers = token && !viaQuery ? { Authorization: `Bearer ${token}` } : {};
  // Each connection's body passes through a stream the test can fail, as a
  // network error would, to watch the client reconnect by itself (aborting
  // the fetch instead would look like the client's own close).
  let cut = () => {};
  const connections = [];
  const es = new EventSource(streamUrl(base, channels, q), {
    fetch: async (input, init) => {
      const upstream = new AbortController();
      init.signal?.addEventListener('abort', () => upstream.abort());
      connections.push({ lastEventId: new Headers(init.headers).get('last-event-id') });
      const res = await fetch(input, { ...init, signal: upstream.signal, headers: { ...init.headers, ...headers } });
      if (!res.body) return res;
      let fail;
      const relay = new TransformStream({
        start(controller) {
          fail = () => controller.error(new TypeError('connection dropped'));
        },
      });
      res.body.pipeTo(relay.writable).catch(() => {});
      cut = () => {
        fail();
        upstream.abort();
      };
      return new Response(relay.readable, { status: res.status, statusText: res.statusText, headers: res.headers });
    },
  });
  const events = [];
  const errors = [];
  const waiters = new Set();
  const notify = () => {
    for (const w of waiters) w();
  };
  for (const type of [...RELAY_EVENTS, ...types]) {
    es.addEventListener(type, (e) => {
      events.push({ type, id: e.lastEventId, data: e.data });
      notify();
    });
  }
  es.addEventListener('error', (e) => {
    errors.push({ code: e.code, message: e.message });
    notify();
  });
  const until = (predicate, timeoutMs = 10_000, what = 'condition') =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (predicate()) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(events).slice(0, 2000)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return {
    es,
    events,
    errors,
    /** Events other than the relay's own frames. */
    data: () => events.filter((e) => !RELAY_EVENTS.includes(e.type)),
    opened: () => until(() => events.some((e) => e.type === 'stream-open'), 10_000, 'stream-open'),
    waitForData: (n, timeoutMs) =>
      until(() => events.filter((e) => !RELAY_EVENTS.includes(e.type)).length >= n, timeoutMs, `${n} events`),
    until,
    /** Every connection the client made, with the Last-Event-ID it sent. */
    connections,
    /** Cuts the current connection as a network failure would. */
    drop: () => cut(),
    close: () => es.close(),
  };
}

/**
 * A client that sends its stream request and then reads nothing, as a stalled
 * browser would, until `resume()`; `text()` is what it read since.
 */
export async function stalledStream(base, channels, token) {
  const { port } = new URL(base);
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  socket.pause();
  const url = new URL(streamUrl(base, channels));
  socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  let text = '';
  return {
    resume() {
      socket.setEncoding('utf8');
      socket.on('data', (d) => {
        text += d;
      });
      socket.resume();
    },
    text: () => text,
    destroy: () => socket.destroy(),
  };
}

/**
 * Reads a stream's raw bytes until `done(text)` is true or the timeout
 * passes, then aborts. Returns the response and the text read.
 */
export async function readRaw(url, { headers = {}, done = () => false, timeoutMs = 5_000 } = {}) {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  let text = '';
  if (res.body) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      while (!done(text)) {
        const { value, done: end } = await reader.read();
        if (end) break;
        text += decoder.decode(value, { stream: true });
      }
    } catch (e) {
      if (e.name !== 'AbortError') throw e;
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  }
  return { res, text };
}

/** Publishes through the HTTP API; returns {status, body, headers}. */
export async function publish(base, token, body, headers = {}) {
  const res = await fetch(new URL('/v1/publish', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, body: json, text, headers: res.headers };
}
