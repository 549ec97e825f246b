// A fault-injecting HTTP proxy between the bridge and the real worker, for
// the bridge's failure tests. Every request passes through to the worker
// unless the test's `plan` says otherwise for a publish request: answer
// without forwarding, forward and then answer something else (the worker
// stored the events, the bridge is told it failed), delay, or never answer.
// Each publish request is recorded with its events and what the bridge saw.
import http from 'node:http';

// Unref'd: a held answer must not keep the test process alive after the tests.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * Starts the proxy on a free loopback port in front of `target` (the
 * worker's origin). `plan({ index, events, headers })` is called for each
 * `POST /v1/publish` and returns what to do:
 *   undefined or {}                      forward, relay the worker's answer
 *   { status, headers?, body? }          answer this, forward nothing
 *   { hang: true }                       forward nothing, never answer
 *   { forward: true, then: { status } }  forward, then answer `status` instead
 *   { forward: true, then: 'hang' }      forward, then never answer
 *   { holdMs }                           forward, hold the worker's answer this long
 *   { delayMs, ... }                     wait this long first
 * `healthy` (settable) decides whether GET /healthz is forwarded or answered
 * 503, as for an edge that is down.
 */
export async function startEdgeProxy(target, { plan = () => undefined } = {}) {
  const requests = [];
  const sockets = new Set();
  const state = { plan, healthy: true };
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const isPublish = req.method === 'POST' && req.url === '/v1/publish';
    if (!isPublish) {
      if (req.url === '/healthz' && !state.healthy) {
        res.writeHead(503).end();
        return;
      }
      await relay(req, body, res);
      return;
    }
    const events = parseEvents(body);
    const record = { index: requests.length, at: Date.now(), events, headers: req.headers, forwarded: false, stored: false, answered: false, status: undefined };
    res.on('finish', () => { record.answered = true; });
    requests.push(record);
    const action = state.plan(record) ?? {};
    if (action.delayMs) await sleep(action.delayMs);
    if (action.hang) return;
    if (action.status && !action.forward) {
      record.status = action.status;
      res.writeHead(action.status, { 'Content-Type': 'application/problem+json', ...action.headers });
      res.end(action.body ?? JSON.stringify({ type: 'about:blank', title: 'injected', status: action.status, code: 'injected' }));
      return;
    }
    record.forwarded = true;
    const answer = await forward(req, body);
    record.stored = answer.status === 202;
    if (action.then === 'hang') return;
    if (action.then?.status) {
      record.status = action.then.status;
      res.writeHead(action.then.status, { 'Content-Type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'injected', status: action.then.status, code: 'injected' }));
      return;
    }
    if (action.holdMs) await sleep(action.holdMs);
    record.status = answer.status;
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function forward(req, body) {
    const headers = {};
    for (const name of ['authorization', 'content-type', 'last-event-id']) {
      if (req.headers[name]) headers[name] = req.headers[name];
    }
    const res = await fetch(new URL(req.url, target), {
      method: req.method,
      headers,
      body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body,
    });
    const out = Buffer.from(await res.arrayBuffer());
    const keep = {};
    for (const name of ['content-type', 'retry-after', 'www-authenticate']) {
      const v = res.headers.get(name);
      if (v) keep[name] = v;
    }
    return { status: res.status, headers: keep, body: out };
  }

  async function relay(req, body, res) {
    try {
      const answer = await forward(req, body);
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    } catch {
      res.writeHead(502).end();
    }
  }

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** Replaces the plan. */
    set plan(fn) {
      state.plan = fn;
    },
    set healthy(value) {
      state.healthy = value;
    },
    /** Stops listening and drops every connection: the edge is unreachable (connection refused). */
    async down() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
    /** Listens again on the same port. */
    async up() {
      await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
    /** Publish requests that reached the worker and were stored there. */
    stored: () => requests.filter((r) => r.stored),
    /** Publish requests the worker stored whose answer the bridge has not had. */
    held: () => requests.filter((r) => r.stored && !r.answered),
    async stop() {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    },
  };
}

function parseEvents(body) {
  try {
    const json = JSON.parse(body.toString('utf8'));
    return Array.isArray(json.events) ? json.events : [json];
  } catch {
    return [];
  }
}

/** The claims of a JWT (no verification: the test reads what the bridge sent). */
export function claimsOf(authorization) {
  const token = String(authorization ?? '').replace(/^Bearer /, '');
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
}
