// The floor's relay with a channel's streams multiplexed inside the Worker
// isolate: one hibernatable WebSocket per isolate per channel instead of one
// per stream. `node bench/floor/run.mjs --shapes hub` measures it beside
// worker.js (a socket per stream).
//
// One of the channel's live streams, the owner, holds the socket in its own
// invocation. For each message it hands the same parsed value to every local
// stream by resolving a promise that stream created; the continuation runs in
// the stream's own invocation (workerd's cross-request promise resolution,
// the `handle_cross_request_promise_resolution` compatibility flag), which
// writes to its own response. No I/O object is touched outside the request
// that created it. What makes this sound in workerd 1.20260426:
//
// - A wake promise must be made with `Promise.withResolvers()`. `new
//   Promise(executor)` in code that TurboFan has optimized makes a promise
//   without the request's context tag, and resolving an untagged promise from
//   another request runs the continuation in the resolving request: every
//   write then fails with "Cannot perform I/O on behalf of a different
//   request". `inOwnRequest()` checks each wake anyway; a stream that finds
//   itself elsewhere stops writing and ends from its own timer.
// - Every stream keeps a timer of its own pending (the keep-alive interval).
//   Waiting on a promise another request resolves, a pending write to an
//   IdentityTransformStream and the response body's pump are not pending
//   events to workerd; a request with none of them is cancelled as hung.
// - Ownership is a role any stream can take over. The owner gives it up when
//   its stream ends, when it has spent its dispatch budget (a long-lived
//   invocation must not run into its CPU limit for the whole channel) and
//   when its socket closes under it; the next owner attaches from the last
//   sequence number the hub delivered and the object replays what followed
//   from its history, so no stream sees a gap or a duplicate. A stream whose
//   keep-alive finds the owner silent for too long takes over.
//
// The object numbers every event, keeps a bounded history in SQLite, and
// sends each event once per socket. Streams that join with a cursor catch up
// from history in their own invocation; a stream that falls behind is closed
// as lagging on its own; kicks carry a tag that the hub matches against its
// streams; stats add up the stream counts each hub reports on its socket.

const HISTORY = 1000;
// Unwritten bytes a stream may hold before it is closed as lagging.
const HIGH_WATER = 256 * 1024;
// Messages waiting for a stream whose invocation has stopped draining them
// (its client went away without the abort reaching it, or it is stuck).
const MAX_QUEUE = 4096;
const KEEPALIVE_MS = 15_000;
// How long an owner gathers stream count changes before it reports them.
const COUNT_DELAY_MS = 100;
// How long an owner waits before it retries an attach the object refused.
const ATTACH_RETRY_MS = 1000;
// An owner silent for this long is presumed gone; a stream takes over.
const OWNER_SILENCE_MS = 2.5 * KEEPALIVE_MS;
// Wakes an owner dispatches before it hands the socket on, so that no single
// invocation pays the channel's fan-out for ever (each wake costs ~1-2 µs).
const DEFAULT_OWNER_BUDGET = 2_000_000;

// A socket message is one kind byte, a sequence number (float64, little
// endian), then the kind's payload.
const EVENT = 0; // the SSE frame to write
const KICK = 1; // the tag whose streams end
const HEAD = 2; // the object's last sequence number, for a socket that asked for no replay
const RESET = 3; // history no longer holds the socket's resume point
const PROMOTE = { kind: 'promote' }; // to a stream: attach the socket

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ignore = () => {};
const frames = {
  open: encoder.encode(': open\n\n'),
  owner: encoder.encode(': owner\n\n'),
  keepAlive: encoder.encode(': keep-alive\n\n'),
  reset: encoder.encode('event: stream-reset\ndata: {}\n\n'),
  error: (code) => encoder.encode(`event: stream-error\ndata: {"code":"${code}"}\n\n`),
};

function message(kind, seq, payload) {
  const bytes = new Uint8Array(9 + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, kind);
  view.setFloat64(1, seq, true);
  bytes.set(payload, 9);
  return bytes;
}

export class Channel {
  constructor(state) {
    this.state = state;
    this.sql = state.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, frame BLOB NOT NULL)');
    this.head = this.sql.exec('SELECT COALESCE(MAX(seq), 0) AS head FROM events').one().head;
    // Messages sent to sockets since this instance started (for the benchmark).
    this.sends = 0;
  }

  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case '/subscribe':
        return this.subscribe(url.searchParams);
      case '/history':
        return this.history(Number(url.searchParams.get('after')));
      case '/kick':
        this.broadcast(message(KICK, this.head, encoder.encode(url.searchParams.get('tag') ?? '')));
        return new Response(null, { status: 204 });
      case '/stats':
        return Response.json(this.stats());
      case '/abort':
        // The benchmark restarts the object as a deploy or an eviction would.
        this.state.abort('restart');
        break;
      default:
        return this.publish(new Uint8Array(await request.arrayBuffer()));
    }
  }

  /**
   * Accepts a hub's socket and, before any later publish can run, sends it
   * every event after its resume point: the replay and the live events that
   * follow it come from one object turn, so none is missing or repeated.
   */
  subscribe(params) {
    const pair = new WebSocketPair();
    const socket = pair[1];
    this.state.acceptWebSocket(socket);
    socket.serializeAttachment({ streams: Number(params.get('streams') ?? 1) });
    const after = params.get('after');
    if (after === null) {
      socket.send(message(HEAD, this.head, new Uint8Array()));
    } else if (Number(after) < this.oldest() - 1) {
      socket.send(message(RESET, this.head, new Uint8Array()));
    } else {
      for (const row of this.sql.exec('SELECT seq, frame FROM events WHERE seq > ? ORDER BY seq', Number(after))) {
        socket.send(message(EVENT, row.seq, new Uint8Array(row.frame)));
        this.sends++;
      }
    }
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** Events after `after` as records of seq (float64), length (uint32), frame. */
  history(after) {
    if (after < this.oldest() - 1) return new Response(null, { status: 410 });
    const rows = [...this.sql.exec('SELECT seq, frame FROM events WHERE seq > ? ORDER BY seq', after)];
    const size = rows.reduce((total, row) => total + 12 + row.frame.byteLength, 0);
    const body = new Uint8Array(size);
    const view = new DataView(body.buffer);
    let at = 0;
    for (const row of rows) {
      view.setFloat64(at, row.seq, true);
      view.setUint32(at + 8, row.frame.byteLength, true);
      body.set(new Uint8Array(row.frame), at + 12);
      at += 12 + row.frame.byteLength;
    }
    return new Response(body);
  }

  publish(frame) {
    const seq = ++this.head;
    this.sql.exec('INSERT INTO events (seq, frame) VALUES (?, ?)', seq, frame);
    this.sql.exec('DELETE FROM events WHERE seq <= ?', seq - HISTORY);
    this.broadcast(message(EVENT, seq, frame));
    return Response.json({ seq });
  }

  broadcast(bytes) {
    for (const socket of this.state.getWebSockets()) {
      socket.send(bytes);
      this.sends++;
    }
  }

  oldest() {
    return this.sql.exec('SELECT COALESCE(MIN(seq), ?) AS oldest FROM events', this.head + 1).one().oldest;
  }

  stats() {
    const sockets = this.state.getWebSockets();
    const streams = sockets.reduce((total, socket) => total + (socket.deserializeAttachment()?.streams ?? 0), 0);
    return { streams, sockets: sockets.length, sends: this.sends, head: this.head };
  }

  /** A hub reports how many streams it serves. */
  webSocketMessage(socket, text) {
    const { streams } = JSON.parse(text);
    socket.serializeAttachment({ streams });
  }

  webSocketClose(socket, code) {
    try {
      socket.close(code === 1006 ? 1000 : code);
    } catch {
      // Already closed.
    }
  }
}

/**
 * A response body written through workerd's native IdentityTransformStream:
 * the least CPU per write, but workerd pumps it into the response through a
 * 64 KiB buffer of its own for as long as the stream is open.
 */
class PipeBody {
  constructor() {
    const pipe = new IdentityTransformStream({ highWaterMark: HIGH_WATER });
    this.readable = pipe.readable;
    this.writer = pipe.writable.getWriter();
  }

  write(bytes, failed) {
    this.writer.write(bytes).catch(failed);
  }

  desiredSize() {
    return this.writer.desiredSize;
  }

  close() {
    this.writer.close().catch(ignore);
  }
}

/**
 * A response body from a JavaScript ReadableStream: workerd hands each
 * enqueued chunk to the response as it is, with no buffer of its own, so an
 * idle stream costs half the memory, for a little more CPU per write.
 */
class ScriptBody {
  constructor() {
    this.readable = new ReadableStream(
      {
        start: (controller) => {
          this.controller = controller;
        },
        cancel: () => {
          this.cancelled = true;
        },
      },
      { highWaterMark: HIGH_WATER, size: (chunk) => chunk.byteLength },
    );
    this.cancelled = false;
  }

  write(bytes, failed) {
    if (this.cancelled) return failed();
    this.controller.enqueue(bytes);
  }

  desiredSize() {
    return this.controller.desiredSize;
  }

  close() {
    if (!this.cancelled) this.controller.close();
  }
}

/** This isolate's hubs, by channel name. */
const hubs = new Map();

/**
 * One channel's streams in this isolate. Plain data only: the socket belongs
 * to the owner's request and is used only from code that runs there.
 */
class Hub {
  constructor(name, budget) {
    this.name = name;
    this.budget = budget;
    this.streams = new Set();
    this.position = undefined; // last sequence number handed to the streams
    this.owner = null;
    this.socket = null;
    this.promoting = false;
    this.ownerSeen = Date.now();
    this.ownerWake = null;
    this.countChanged = false;
    this.spent = 0; // wakes the current owner has dispatched
  }

  join(stream, after) {
    stream.position = after ?? this.position;
    this.streams.add(stream);
    this.reportCount();
    if (!this.owner && !this.promoting) {
      this.owner = stream;
      return true;
    }
    return false;
  }

  leave(stream) {
    this.streams.delete(stream);
    if (this.owner === stream) this.handOver();
    else this.reportCount();
    if (this.streams.size === 0 && !this.owner && hubs.get(this.name) === this) hubs.delete(this.name);
  }

  /**
   * The owner steps down, in its own request: its socket closes and the
   * oldest other stream is asked to attach.
   */
  handOver() {
    const previous = this.owner;
    this.owner = null;
    this.ownerSeen = Date.now();
    this.wakeOwner();
    if (this.socket) this.socket.close(1000, 'handover');
    this.socket = null;
    if (previous) previous.socket = null;
    for (const next of this.streams) {
      if (next === previous) continue;
      this.promoting = true;
      this.deliver(next, PROMOTE);
      return;
    }
  }

  reportCount() {
    this.countChanged = true;
    this.wakeOwner();
  }

  wakeOwner() {
    const wake = this.ownerWake;
    this.ownerWake = null;
    if (wake) wake();
  }

  deliver(stream, item) {
    stream.queue.push(item);
    const wake = stream.wake;
    if (wake) {
      stream.wake = null;
      this.spent++;
      wake();
    }
  }

  /** A message from the object, in the owner's request. */
  receive(socket, data) {
    if (socket !== this.socket) return; // a socket being replaced
    const view = new DataView(data);
    const kind = view.getUint8(0);
    const seq = view.getFloat64(1, true);
    if (kind === EVENT) {
      if (this.position !== undefined && seq <= this.position) return;
      this.position = seq;
      const item = { kind, seq, frame: new Uint8Array(data, 9) };
      for (const stream of this.streams) this.deliver(stream, item);
    } else if (kind === KICK) {
      const tag = decoder.decode(new Uint8Array(data, 9));
      const item = { kind, seq };
      for (const stream of this.streams) if (stream.tags.includes(tag)) this.deliver(stream, item);
    } else {
      // HEAD for a socket that asked for no replay; RESET when history no
      // longer reaches back to where this hub was.
      this.position = seq;
      const item = { kind, seq };
      for (const stream of this.streams) if (kind === RESET || stream.position === undefined) this.deliver(stream, item);
    }
    for (const stream of this.streams) {
      if (stream.queue.length > MAX_QUEUE) {
        stream.dropped = true;
        this.streams.delete(stream);
        this.reportCount();
      }
    }
    if (this.spent > this.budget && this.owner && !this.owner.rotate && this.streams.size > 1) {
      this.owner.rotate = true;
      this.deliver(this.owner, PROMOTE);
    }
  }
}

/** One client's stream; every method runs in that client's request. */
class Stream {
  constructor(request, env, body, tags) {
    this.signal = request.signal;
    this.env = env;
    this.body = body;
    this.tags = tags;
    this.queue = [];
    this.wake = null;
    this.position = undefined;
    this.ended = false;
    this.dropped = false;
    this.misrouted = false;
    this.rotate = false;
    this.socket = null;
    this.writeFailed = () => this.end(null);
  }

  write(bytes) {
    this.body.write(bytes, this.writeFailed);
  }

  /**
   * A stub of the channel's object, made for each call: a stub that was
   * talking to the object when it restarted fails every later call.
   */
  channel() {
    return this.env.CHANNEL.get(this.env.CHANNEL.idFromName(this.hub.name));
  }

  /**
   * Whether this code runs in this stream's own request: the request's
   * signal can be read only there.
   */
  inOwnRequest() {
    try {
      return this.signal.aborted !== undefined;
    } catch {
      return false;
    }
  }

  async run(hub, after) {
    this.hub = hub;
    this.keepAlive = setInterval(() => this.tick(), KEEPALIVE_MS);
    this.signal.addEventListener('abort', () => this.end(null));
    // `: open` says the stream is live from here; a stream that joins a hub
    // still attaching learns where that is from the object's HEAD.
    if (hub.join(this, after)) await this.attach();
    if (this.position !== undefined) this.write(frames.open);
    if (after !== null) await this.fill();
    for (;;) {
      if (this.queue.length === 0) {
        const { promise, resolve } = Promise.withResolvers();
        this.wake = resolve;
        await promise;
      }
      if (this.ended) return;
      if (!this.inOwnRequest()) {
        this.misrouted = true;
        console.log(JSON.stringify({ floor: 'misrouted' }));
        return;
      }
      const items = this.queue;
      this.queue = [];
      for (const item of items) {
        await this.apply(item);
        if (this.ended) return;
      }
      if (this.body.desiredSize() <= 0) this.end('lagging');
    }
  }

  async apply(item) {
    if (item === PROMOTE) {
      if (this.rotate) {
        this.rotate = false;
        this.hub.spent = 0;
        if (this.hub.owner === this) this.hub.handOver();
        return;
      }
      this.hub.promoting = false;
      if (!this.hub.owner) {
        this.hub.owner = this;
        await this.attach();
      }
    } else if (item.kind === EVENT) {
      if (this.position === undefined) {
        this.position = item.seq - 1;
        this.write(frames.open);
      }
      if (item.seq <= this.position) return;
      if (item.seq > this.position + 1) await this.fill();
      if (item.seq !== this.position + 1) return;
      this.write(item.frame);
      this.position = item.seq;
    } else if (item.kind === KICK) {
      this.end('kicked');
    } else if (item.kind === RESET) {
      this.write(frames.reset);
      this.position = item.seq;
    } else if (this.position === undefined) {
      this.position = item.seq; // HEAD: live from here
      this.write(frames.open);
    }
  }

  /** Writes what history holds after this stream's position. */
  async fill() {
    const response = await this.channel().fetch(`https://channel/history?after=${this.position}`);
    if (response.status === 410) {
      this.write(frames.reset);
      this.position = this.hub.position;
      return;
    }
    const body = await response.arrayBuffer();
    const view = new DataView(body);
    for (let at = 0; at < body.byteLength; ) {
      const seq = view.getFloat64(at, true);
      const length = view.getUint32(at + 8, true);
      if (seq === this.position + 1) {
        this.write(new Uint8Array(body, at + 12, length));
        this.position = seq;
      }
      at += 12 + length;
    }
  }

  /** Becomes the hub's owner: attaches the socket from the hub's position. */
  async attach() {
    const hub = this.hub;
    hub.promoting = false;
    hub.spent = 0;
    hub.ownerSeen = Date.now();
    const resume = hub.position === undefined ? '' : `&after=${hub.position}`;
    let response;
    try {
      response = await this.channel().fetch(`https://channel/subscribe?streams=${hub.streams.size}${resume}`, {
        headers: { Upgrade: 'websocket' },
      });
    } catch (error) {
      console.log(JSON.stringify({ floor: 'attach-failed', error: String(error) }));
      setTimeout(() => !this.ended && hub.owner === this && this.attach(), ATTACH_RETRY_MS);
      return;
    }
    const socket = response.webSocket;
    if (this.ended || hub.owner !== this) {
      socket.accept();
      socket.close(1000, 'superseded');
      return;
    }
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('message', (event) => hub.receive(socket, event.data));
    socket.addEventListener('close', () => this.lost(socket));
    socket.addEventListener('error', () => this.lost(socket));
    hub.socket = socket;
    this.socket = socket;
    socket.accept();
    this.write(frames.owner);
    this.reportCounts(socket);
  }

  /** The socket closed under its owner (the object restarted): attach again. */
  lost(socket) {
    const hub = this.hub;
    if (hub.socket !== socket) return;
    hub.socket = null;
    this.socket = null;
    console.log(JSON.stringify({ floor: 'reattach', position: hub.position }));
    if (!this.ended && hub.owner === this) this.attach();
  }

  /** Sends the hub's stream count on its socket whenever it changes. */
  async reportCounts(socket) {
    const hub = this.hub;
    while (hub.socket === socket) {
      if (!hub.countChanged) {
        const { promise, resolve } = Promise.withResolvers();
        hub.ownerWake = resolve;
        await promise;
      }
      await scheduler.wait(COUNT_DELAY_MS);
      if (hub.socket !== socket || !this.inOwnRequest()) return;
      hub.countChanged = false;
      socket.send(JSON.stringify({ streams: hub.streams.size }));
    }
  }

  /** The keep-alive; also what notices an owner gone quiet or a hub that let go. */
  tick() {
    if (this.ended) return;
    if (this.misrouted || this.dropped) {
      this.end(this.misrouted ? 'internal' : 'lagging');
      return;
    }
    this.write(frames.keepAlive);
    const hub = this.hub;
    if (hub.owner === this) {
      hub.ownerSeen = Date.now();
    } else if (this.socket) {
      this.socket.close(1000, 'superseded');
      this.socket = null;
    } else if ((!hub.owner && !hub.promoting) || Date.now() - hub.ownerSeen > OWNER_SILENCE_MS) {
      console.log(JSON.stringify({ floor: 'takeover', position: hub.position }));
      hub.owner = this;
      this.attach();
    }
  }

  /** Ends the stream, with a stream-error frame when the relay ends it. */
  end(code) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.keepAlive);
    this.hub.leave(this);
    if (this.socket) {
      this.socket.close(1000, 'ended');
      this.socket = null;
    }
    if (code) this.write(frames.error(code));
    this.body.close();
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const name = url.searchParams.get('channel') ?? 'floor';
    const channel = env.CHANNEL.get(env.CHANNEL.idFromName(name));
    if (url.pathname === '/kick' || url.pathname === '/stats') {
      return channel.fetch(`https://channel${url.pathname}${url.search}`);
    }
    if (url.pathname === '/abort') {
      return channel.fetch('https://channel/abort').catch((error) => new Response(String(error), { status: 503 }));
    }
    if (url.pathname !== '/stream') {
      return channel.fetch('https://channel/publish', { method: 'POST', body: request.body });
    }
    let hub = hubs.get(name);
    if (!hub) {
      hub = new Hub(name, Number(env.OWNER_BUDGET ?? DEFAULT_OWNER_BUDGET));
      hubs.set(name, hub);
    }
    const body = env.BODY === 'js' ? new ScriptBody() : new PipeBody();
    const stream = new Stream(request, env, body, url.searchParams.getAll('tag'));
    const after = url.searchParams.get('after');
    stream.run(hub, after === null ? null : Number(after)).catch((error) => {
      console.log(JSON.stringify({ floor: 'stream-failed', error: String(error) }));
      stream.end('internal');
    });
    return new Response(body.readable, { headers: { 'Content-Type': 'text/event-stream' } });
  },
};
