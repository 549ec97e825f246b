// A real Valkey server for tests (the valkey-server that scripts/bootstrap
// installs), and a minimal RESP client to drive it: PUBLISH, XADD, XRANGE,
// PUBSUB NUMSUB. Written here rather than taken from npm so the tests need no
// package beyond the lock file's.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { ROOT } from './worker.mjs';

export const VALKEY_SERVER = path.join(ROOT, '.tools/bin/valkey-server');

/** A free loopback TCP port (free when this returns; bind it soon). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts valkey-server on a free loopback port with its data in `dir`.
 * With `appendonly` (the default) every write is in the append-only file, so
 * `restart()` keeps streams and consumer groups, as a production server with
 * persistence would.
 */
export async function startValkey({ dir, appendonly = true, port } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  port ??= await freePort();
  let proc;
  let log = '';
  const launch = async () => {
    proc = spawn(
      VALKEY_SERVER,
      [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
        '--appendonly', appendonly ? 'yes' : 'no', '--appendfsync', 'always',
        '--protected-mode', 'no', '--logfile', '',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout.on('data', (d) => { log = (log + d).slice(-20_000); });
    proc.stderr.on('data', (d) => { log = (log + d).slice(-20_000); });
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.exited = exited;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const c = await RespClient.connect(port);
        await c.command('PING');
        c.close();
        return;
      } catch (e) {
        if (Date.now() > deadline || proc.exitCode !== null) {
          throw new Error(`valkey-server did not start: ${e.message}\n${log}`);
        }
        await sleep(50);
      }
    }
  };
  const stop = async () => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await proc.exited;
    clearTimeout(timer);
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() { return proc.pid; },
    log: () => log,
    stop,
    /** Stops the server (a clean shutdown) and starts it again on the same port and data. */
    async restart({ downMs = 0 } = {}) {
      await stop();
      if (downMs) await sleep(downMs);
      await launch();
    },
    client: () => RespClient.connect(port),
  };
}

/** A RESP2 client: one connection, pipelined commands, replies in order. */
export class RespClient {
  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RespClient(socket));
      });
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.pending = [];
    this.closed = false;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      this.drain();
    });
    const fail = (err) => {
      this.closed = true;
      const e = err ?? new Error('connection closed');
      for (const p of this.pending.splice(0)) p.reject(e);
    };
    socket.on('error', fail);
    socket.on('close', () => fail());
  }

  /** Sends one command; resolves with the reply (a server error rejects). */
  command(...args) {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
      const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
      parts.push(`$${b.length}\r\n`, b, '\r\n');
    }
    this.socket.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  drain() {
    while (this.pending.length) {
      const parsed = parse(this.buffer, 0);
      if (!parsed) return;
      this.buffer = this.buffer.subarray(parsed.end);
      const p = this.pending.shift();
      if (parsed.value instanceof Error) p.reject(parsed.value);
      else p.resolve(parsed.value);
    }
  }

  close() {
    this.closed = true;
    this.socket.destroy();
  }
}

/** Parses one RESP2 value at `at`; undefined when the buffer is incomplete. */
function parse(buf, at) {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new Error(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const item = parse(buf, pos);
        if (!item) return undefined;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
  }
}
