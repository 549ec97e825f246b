// A stream's response body, in one of two kinds (`STREAM_BODY`):
//
// - `native`: workerd's IdentityTransformStream. A write goes straight to
//   the response with the least CPU, but workerd pumps the pipe into the
//   response through a 64 KiB buffer of its own for as long as the stream is
//   open.
// - `script`: a JavaScript ReadableStream that the writers enqueue into. Its
//   chunks go to the response as they are, so an idle stream holds no
//   buffer: about half the memory per open stream, for more CPU per write and
//   a longer fan-out tail (docs/benchmarks.md has both measured).
//
// Both offer the writers (the Rust pump, the frame tap) the surface of a
// WritableStream's writer, which they were written against: `write(chunk)`
// settles once the body has room again (at once while it has room) and
// rejects once the client is gone; `push(chunk)` is a write nobody waits
// for; `desiredSize` is the high-water mark less the unread bytes (null once
// the body failed); `close()` ends the body after what is queued and
// `abort()` ends it now.

const ignore = () => {};

class NativeBody {
  constructor(highWaterMark) {
    const pipe = new IdentityTransformStream({ highWaterMark });
    this.readable = pipe.readable;
    this.writer = pipe.writable.getWriter();
  }

  write(chunk) {
    return this.writer.write(chunk);
  }

  push(chunk) {
    this.writer.write(chunk).catch(ignore);
  }

  get desiredSize() {
    return this.writer.desiredSize;
  }

  close() {
    return this.writer.close();
  }

  abort() {
    return this.writer.abort();
  }
}

class ScriptBody {
  constructor(highWaterMark) {
    this.controller = null;
    this.done = false;
    // Writes made while the body was full, settled by the next pull.
    this.waiting = [];
    this.readable = new ReadableStream(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.settle(null),
        cancel: () => this.end(new Error('the client went away')),
      },
      { highWaterMark, size: (chunk) => chunk.byteLength },
    );
  }

  write(chunk) {
    if (this.done) return Promise.reject(new Error('the stream has ended'));
    this.controller.enqueue(chunk);
    if (this.controller.desiredSize > 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  // No promise per chunk: the tap writes once per event per stream.
  push(chunk) {
    if (!this.done) this.controller.enqueue(chunk);
  }

  get desiredSize() {
    return this.done ? null : this.controller.desiredSize;
  }

  close() {
    if (!this.done) {
      this.controller.close();
      this.end(null);
    }
    return Promise.resolve();
  }

  abort() {
    if (!this.done) this.controller.error(new Error('the stream was aborted'));
    this.end(new Error('the stream was aborted'));
    return Promise.resolve();
  }

  end(error) {
    this.done = true;
    this.settle(error);
  }

  settle(error) {
    const waiting = this.waiting;
    if (waiting.length === 0) return;
    this.waiting = [];
    for (const write of waiting) {
      if (error) write.reject(error);
      else write.resolve();
    }
  }
}

export function openBody(script, highWaterMark) {
  return script ? new ScriptBody(highWaterMark) : new NativeBody(highWaterMark);
}
