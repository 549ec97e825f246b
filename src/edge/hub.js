// A channel's streams in one Worker isolate share one WebSocket to the
// channel's object (`HUB_DISPATCH_BUDGET` above 0): the object sends each
// publish once per isolate instead of once per stream.
//
// One of the channel's streams, the owner, holds the socket in its own
// invocation; only code running there touches it. For each message the hub
// queues the same ArrayBuffer for every member and resolves a promise the
// member made; the continuation runs in the member's own invocation, which
// hands the message to its frame tap (frame_tap.js) and so writes to its own
// response. No I/O object is used outside the request that made it. What
// keeps this sound in workerd (docs/architecture.md, "Streams of one channel
// in one isolate"):
//
// - Wake promises are made with `Promise.withResolvers()`, which keeps the
//   request's context tag; each wake checks that it runs in its own request
//   anyway, and a member that finds itself elsewhere stops, and its stream
//   ends from its own keep-alive (`tick`).
// - Every stream keeps a timer of its own pending: the Rust pump's
//   keep-alive, which also calls `tick`. A promise another request resolves
//   is not a pending event to workerd; a request with none is cancelled.
// - Ownership moves. The owner hands it on when its stream ends, when it has
//   dispatched its budget of wakes, and attaches again when its socket closes
//   under it; a member that finds the owner silent for too long takes over.
//   Every attach asks for the events after the last sequence number the hub
//   handed out, and the object replays them from history first, so no member
//   sees a gap or a repeat. Each member's tap still drops what it has and
//   pages in what it lacks, as it does for a socket of its own.
//
// Joins go together. A stream must learn from the object what it sees
// before any live event, and whether it is revoked (`HubJoin` in core); the
// streams that join while one join is in flight wait for it to come back
// and then go in the next one, sent from the request of the first of them,
// which hands every other its answer as it hands on messages. A join that
// fails, or that does not come back within JOIN_WAIT_MS, leaves each of its
// waiting streams to ask on its own, so a stream whose client went away
// mid-join holds nobody up for long.
//
// Control codes go to the pump through the tap's `onControl`: OWN asks the
// member's pump to attach the hub's socket, KICKED (the close code of a kick)
// ends its stream as kicked.

const OWN = -3;
const KICKED = 4001;
// Messages waiting for a member whose invocation has stopped draining them
// (its client went away without the abort reaching it, or it is stuck).
const MAX_QUEUE = 4096;
// The least time between two stream counts the owner reports.
const REPORT_MS = 100;
// The most streams one join carries (MAX_JOINERS in core).
const MAX_JOINERS = 64;
// How long a stream waits for a join that another stream sent before it
// asks on its own.
const JOIN_WAIT_MS = 3000;
// Keep-alive intervals without a sign of life after which an owner is taken
// for gone by the member that takes over.
const SILENT_KEEPALIVES = 2.5;
// The same for any other member, by the owner, which drops it: longer, since
// a member dropped by mistake ends its stream, where a takeover only moves
// the socket.
const GONE_KEEPALIVES = 5;
// What `tick` tells the pump.
const TICK_OK = 0;
const TICK_OWN = 1;
const TICK_DROPPED = 2;
const TICK_MISROUTED = 3;

const KICK = { kind: 'kick' };
const PROMOTE = { kind: 'promote' };
const ROTATE = { kind: 'rotate' };
const REPORT = { kind: 'report' };

/** This isolate's hubs, by channel name. */
const hubs = new Map();

/** One channel's members in this isolate. Plain data only. */
class Hub {
  constructor(channel, budget) {
    // Names this hub in its streams' joins and its attach, so the object
    // counts the streams that joined before the owner attached.
    this.id = Math.floor(Math.random() * 2 ** 53);
    this.channel = channel;
    this.budget = budget;
    this.members = new Set();
    // The last sequence number handed to the members; none before the first
    // member learned the channel's head.
    this.position = null;
    this.owner = null;
    this.socket = null;
    // The member asked to take over, until it has run.
    this.promoted = null;
    this.ownerSeen = Date.now();
    this.spent = 0;
    this.reportQueued = false;
    this.reportedAt = 0;
    // Joins not sent yet, and the one in flight with when it was sent.
    this.joins = [];
    this.joining = null;
    this.joiningSince = 0;
  }

  /** Sends the waiting joins, from the request of the first of them. */
  nextJoin() {
    if (this.joining !== null || this.joins.length === 0) return;
    const batch = this.joins.splice(0, MAX_JOINERS);
    this.joining = batch;
    this.joiningSince = Date.now();
    batch[0].resolve(batch.map((entry) => entry.joiner));
  }

  /** The join in flight will not be answered: its streams ask alone. */
  abandonJoin() {
    const batch = this.joining;
    if (batch === null) return;
    this.joining = null;
    for (const entry of batch.slice(1)) entry.resolve(undefined);
    this.nextJoin();
  }

  leave(member) {
    this.members.delete(member);
    this.joins = this.joins.filter((entry) => entry.member !== member);
    if (this.joining !== null && this.joining[0].member === member) this.abandonJoin();
    if (this.owner === member || this.promoted === member) this.handOver(member);
    else this.reportCount();
    if (this.members.size === 0 && this.owner === null && hubs.get(this.channel) === this) {
      hubs.delete(this.channel);
    }
  }

  /** In the owner's request: its socket closes and another member is asked. */
  handOver(previous) {
    this.ownerSeen = Date.now();
    this.promoted = null;
    if (this.owner === previous) {
      this.owner = null;
      if (this.socket) this.socket.close(1000, 'handover');
      this.socket = null;
      previous.socket = null;
    }
    if (this.owner !== null) return;
    for (const next of this.members) {
      if (next === previous) continue;
      this.promoted = next;
      this.deliver(next, PROMOTE);
      return;
    }
  }

  /**
   * In the owner's request: the members whose request has stopped running
   * leave. workerd cancels a request whose client went away before it got
   * its response, and such a request runs nothing again, neither its
   * stream's end nor its keep-alive; with a socket of its own the runtime
   * closes that socket, but a hub member is only this hub's state. A member
   * that has not started its stream yet is still joining and gets the join's
   * wait on top.
   */
  sweep(owner, now) {
    for (const member of this.members) {
      if (member === owner) continue;
      const silentMs = GONE_KEEPALIVES * member.keepaliveMs + (member.started ? 0 : 2 * JOIN_WAIT_MS);
      if (now - member.seen > silentMs) {
        member.dropped = true;
        member.queue = [];
        this.leave(member);
      }
    }
  }

  reportCount() {
    if (this.owner && !this.reportQueued) {
      this.reportQueued = true;
      this.deliver(this.owner, REPORT);
    }
  }

  deliver(member, item) {
    member.queue.push(item);
    const wake = member.wake;
    if (wake) {
      member.wake = null;
      this.spent++;
      wake();
    }
  }

  /** A message from the object, in the owner's request. */
  receive(socket, data) {
    if (socket !== this.socket) return;
    if (typeof data === 'string') {
      this.answer(socket, data);
      return;
    }
    const view = new DataView(data);
    const count = view.getUint32(0, true);
    if (count === 0) return;
    const last = view.getFloat64(4 + 8 * (count - 1), true);
    // A replay can overlap what was handed out already; the taps would drop
    // it, but there is no need to wake them for nothing.
    if (this.position !== null && last <= this.position) return;
    this.position = last;
    for (const member of this.members) {
      this.deliver(member, data);
      if (member.queue.length > MAX_QUEUE) {
        member.dropped = true;
        member.queue = [];
        this.members.delete(member);
        this.reportCount();
      }
    }
    const owner = this.owner;
    if (this.budget > 0 && this.spent > this.budget && owner && !owner.rotating && this.members.size > 1) {
      owner.rotating = true;
      this.deliver(owner, ROTATE);
    }
  }

  /**
   * A question from the object (HubKick or HubCount in core), answered with
   * the same id: the streams a kick's tag ended, or the streams served now.
   */
  answer(socket, text) {
    let question;
    try {
      question = JSON.parse(text);
    } catch {
      return;
    }
    let reply;
    if (typeof question.kick === 'string') {
      let closed = 0;
      for (const member of this.members) {
        if (member.tags.includes(question.kick)) {
          this.deliver(member, KICK);
          closed++;
        }
      }
      reply = { kicked: question.id, hub: this.id, closed };
    } else if (typeof question.count === 'number') {
      reply = { counted: question.count, hub: this.id, streams: this.members.size };
    } else {
      return;
    }
    try {
      socket.send(JSON.stringify(reply));
    } catch {
      // A socket closing under its owner: a kick's streams end anyway.
    }
  }
}

export class HubMember {
  constructor(channel, tap, tags, signal, keepaliveMs, budget) {
    let hub = hubs.get(channel);
    if (!hub) {
      hub = new Hub(channel, budget);
      hubs.set(channel, hub);
    }
    this.hub = hub;
    this.tap = tap;
    this.tags = tags;
    this.signal = signal;
    this.keepaliveMs = keepaliveMs;
    this.queue = [];
    this.wake = null;
    this.socket = null;
    this.ended = false;
    this.dropped = false;
    this.misrouted = false;
    this.rotating = false;
    // Its last sign of life (made, started, a keep-alive), for the owner's
    // sweep.
    this.started = false;
    this.seen = Date.now();
    // Joined before the stream asks the object for its head, so that every
    // event after that head reaches it through the hub.
    hub.members.add(this);
    this.run();
  }

  /**
   * The stream's turn at joining (`Turn` in hub.rs): a promise of its
   * opening (a string), of null if it is revoked, of the joins it must send
   * for itself and the streams queued after it (an array, its own first),
   * or of undefined when it must ask alone. Its own timer keeps its request
   * alive meanwhile: a promise another request resolves is not something
   * workerd waits for.
   */
  join(joiner) {
    const { promise, resolve } = Promise.withResolvers();
    const timer = setTimeout(() => {
      this.overdue();
      resolve(undefined);
    }, JOIN_WAIT_MS);
    const settle = (turn) => {
      clearTimeout(timer);
      resolve(turn);
    };
    this.hub.joins.push({ member: this, joiner, resolve: settle });
    this.hub.nextJoin();
    return promise;
  }

  /**
   * The join this stream sent came back: `answers` are each stream's
   * opening or null (revoked), in the join's order, or null if the join
   * failed. The stream's own answer is the first.
   */
  answered(answers) {
    const hub = this.hub;
    const batch = hub.joining;
    if (batch === null || batch[0].member !== this) return;
    hub.joining = null;
    batch.slice(1).forEach((entry, index) => entry.resolve(answers === null ? undefined : answers[index + 1]));
    hub.nextJoin();
  }

  /**
   * The stream waited JOIN_WAIT_MS for its turn and asks alone now; the join
   * in flight, if it is that old, is given up.
   */
  overdue() {
    const hub = this.hub;
    hub.joins = hub.joins.filter((entry) => entry.member !== this);
    const joining = hub.joining;
    if (joining === null) return;
    // Handed the join just as it gave up waiting: it sends only its own.
    const sender = joining[0].member === this;
    if (sender || Date.now() - hub.joiningSince >= JOIN_WAIT_MS) hub.abandonJoin();
  }

  /**
   * The object answered the stream's join with the channel's head: the hub
   * starts from it if it has no position, and gets an owner if it has none.
   */
  start(head) {
    this.started = true;
    this.seen = Date.now();
    const hub = this.hub;
    if (hub.position === null) hub.position = head;
    if (hub.owner === null && hub.promoted === null) {
      hub.owner = this;
      hub.ownerSeen = Date.now();
      this.tap.control(null, OWN);
    } else {
      hub.reportCount();
    }
  }

  /** Where the owner's next attach resumes from. */
  position() {
    return this.hub.position ?? 0;
  }

  streams() {
    return this.hub.members.size;
  }

  hubId() {
    return this.hub.id;
  }

  /**
   * The owner's attach came back with `socket`: it listens on it, unless it
   * stopped being the owner meanwhile. False if the socket was not taken.
   */
  adopt(socket) {
    const hub = this.hub;
    if (this.ended || hub.owner !== this) {
      socket.accept();
      socket.close(1000, 'superseded');
      return false;
    }
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('message', (event) => hub.receive(socket, event.data));
    socket.addEventListener('close', (event) => this.lost(socket, event.code));
    socket.addEventListener('error', () => this.lost(socket, 0));
    socket.accept();
    hub.socket = socket;
    hub.spent = 0;
    hub.ownerSeen = Date.now();
    this.socket = socket;
    // The count it attached with may be stale already.
    hub.reportQueued = false;
    hub.reportCount();
    return true;
  }

  /** The socket closed under its owner: a kick of all, or attach again. */
  lost(socket, code) {
    const hub = this.hub;
    if (hub.socket !== socket) return;
    hub.socket = null;
    this.socket = null;
    if (code === KICKED) {
      for (const member of hub.members) hub.deliver(member, KICK);
    } else if (!this.ended && hub.owner === this) {
      this.tap.control(null, OWN);
    }
  }

  /** Whether this code runs in this member's own request. */
  inOwnRequest() {
    try {
      return this.signal.aborted !== undefined;
    } catch {
      return false;
    }
  }

  async run() {
    for (;;) {
      if (this.queue.length === 0) {
        const { promise, resolve } = Promise.withResolvers();
        this.wake = resolve;
        await promise;
      }
      if (this.ended) return;
      if (!this.inOwnRequest()) {
        this.misrouted = true;
        return;
      }
      const items = this.queue;
      this.queue = [];
      for (const item of items) {
        if (this.ended) return;
        this.apply(item);
      }
    }
  }

  apply(item) {
    const hub = this.hub;
    if (item instanceof ArrayBuffer) {
      this.tap.message(item);
    } else if (item === KICK) {
      this.tap.control(null, KICKED);
    } else if (item === PROMOTE) {
      if (hub.promoted === this) hub.promoted = null;
      if (hub.owner === null) {
        hub.owner = this;
        hub.ownerSeen = Date.now();
        this.tap.control(null, OWN);
      }
    } else if (item === ROTATE) {
      this.rotating = false;
      hub.spent = 0;
      if (hub.owner === this && hub.members.size > 1) hub.handOver(this);
    } else if (item === REPORT) {
      this.report();
    }
  }

  /** The owner sends the hub's stream count, at most every REPORT_MS. */
  report() {
    const hub = this.hub;
    const wait = hub.reportedAt + REPORT_MS - Date.now();
    if (wait > 0) {
      setTimeout(() => !this.ended && this.report(), wait);
      return;
    }
    hub.reportQueued = false;
    if (hub.owner !== this || !this.socket || hub.socket !== this.socket) return;
    hub.reportedAt = Date.now();
    try {
      this.socket.send(JSON.stringify({ streams: hub.members.size }));
    } catch {
      // The socket is closing; its close handler attaches again.
    }
  }

  /**
   * The keep-alive, in this member's request: what it finds for the pump to
   * act on, and the owner's sign of life.
   */
  tick() {
    if (this.ended) return TICK_OK;
    if (this.misrouted) return TICK_MISROUTED;
    if (this.dropped) return TICK_DROPPED;
    const hub = this.hub;
    const now = Date.now();
    this.seen = now;
    if (hub.owner === this) {
      hub.ownerSeen = now;
      hub.sweep(this, now);
      return TICK_OK;
    }
    if (this.socket) {
      // Taken over while it still held the socket.
      this.socket.close(1000, 'superseded');
      this.socket = null;
    }
    const silent = now - hub.ownerSeen > SILENT_KEEPALIVES * this.keepaliveMs;
    if ((hub.owner === null && hub.promoted === null) || silent) {
      hub.owner = this;
      hub.promoted = null;
      hub.ownerSeen = Date.now();
      return TICK_OWN;
    }
    return TICK_OK;
  }

  /** The stream ends: it leaves, handing the socket on if it owned it. */
  leave() {
    if (this.ended) return;
    this.ended = true;
    this.queue = [];
    this.hub.leave(this);
    if (this.socket) {
      this.socket.close(1000, 'stream closed');
      this.socket = null;
    }
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }
}
