// The live path of a stream of one channel: the channel's object sends each
// publish as pre-rendered SSE frames (edgestream-core's `frames` module has
// the layout), and this listener writes them to the response as they are.
//
// It exists for speed. A delivery that went through wasm cost a copy of the
// message into wasm memory, parsing, encoding, a copy back and a wake of the
// futures executor, for every message on every stream; here it is a header
// read and one write of a view on the received bytes.
//
// The Rust pump (`pump.rs`) still owns the stream: it writes the opening
// frames, the current state, the pages of history and the keep-alives, and
// decides when the live path starts (`release`). Until then binary messages
// are held here. Frames are only written when they follow on from the
// cursor: a message that starts past the next sequence number (events were
// missed: a re-attach, a failed shard push) stops the live path and is held,
// and the pump pages the gap in from history and releases again.
//
// What the pump must hear goes through `onControl(text, code, first, cursor)`:
// `(text, 0)` for a text message (what the object sends on attach), `(null,
// code)` for the socket's close (0 when it had no code), `(null, LAGGING)`
// when the client has more unread bytes than `maxPendingBytes`, and `(null,
// GAP, first, cursor)` when frames from `first` on wait for a gap after
// `cursor` to be filled.

const LAGGING = -1;
const GAP = -2;

export class FrameTap {
  constructor(socket, body, highWaterMark, maxPendingBytes, onControl) {
    this.body = body;
    this.highWaterMark = highWaterMark;
    this.maxPendingBytes = maxPendingBytes;
    this.onControl = onControl;
    this.cursor = 0;
    this.live = false;
    this.stopped = false;
    this.held = [];
    this.heldBytes = 0;
    // What this tap wrote, for the stream's usage points.
    this.events = 0;
    this.bytes = 0;
    // A stream served by its isolate's hub has no socket: the hub hands it
    // the channel's messages (hub.js).
    if (socket == null) return;
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('message', (event) => this.message(event.data));
    socket.addEventListener('close', (event) => this.control(null, event.code || 0));
    socket.addEventListener('error', () => this.control(null, 0));
  }

  message(data) {
    if (this.stopped) return;
    if (typeof data === 'string') {
      this.onControl(data, 0, 0, 0);
    } else if (this.live) {
      this.write(data);
    } else {
      this.hold(data);
    }
  }

  /** The pump has written everything up to `cursor`: go live. */
  release(cursor) {
    this.cursor = cursor;
    this.live = true;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (let i = 0; i < held.length; i++) {
      if (this.stopped) return;
      if (!this.live) {
        // A gap again: what is left waits for the next release.
        for (const data of held.slice(i)) this.hold(data);
        return;
      }
      this.write(held[i]);
    }
  }

  /** The last sequence number written, for a re-attach to resume from. */
  position() {
    return this.cursor;
  }

  /** The stream is ending: nothing more is written or handed over. */
  stop() {
    this.stopped = true;
    this.held = [];
  }

  /** Writes the frames after the cursor, or stops at a gap before them. */
  write(data) {
    const view = new DataView(data);
    const count = view.getUint32(0, true);
    if (count === 0) return;
    const first = view.getFloat64(4, true);
    if (first > this.cursor + 1) {
      this.live = false;
      this.hold(data);
      this.onControl(null, GAP, first, this.cursor);
      return;
    }
    const frames = 4 + 12 * count;
    let start = frames;
    let next = 0;
    if (first <= this.cursor) {
      next = 1;
      while (next < count && view.getFloat64(4 + 8 * next, true) <= this.cursor) next++;
      if (next === count) return;
      start = frames + view.getUint32(4 + 8 * count + 4 * (next - 1), true);
    }
    this.cursor = view.getFloat64(4 + 8 * (count - 1), true);
    this.events += count - next;
    this.bytes += data.byteLength - start;
    // A failed write means the client is gone; the pump learns that from the
    // request's abort signal or its own next write.
    this.body.push(new Uint8Array(data, start));
    // desiredSize is null once the stream errored; that is not lagging.
    const desired = this.body.desiredSize;
    if (desired !== null && this.highWaterMark - desired > this.maxPendingBytes) this.lagging();
  }

  hold(data) {
    this.held.push(data);
    this.heldBytes += data.byteLength;
    if (this.heldBytes > this.maxPendingBytes) this.lagging();
  }

  control(text, code) {
    if (!this.stopped) this.onControl(text, code, 0, 0);
  }

  lagging() {
    this.stopped = true;
    this.held = [];
    this.onControl(null, LAGGING, 0, 0);
  }
}
