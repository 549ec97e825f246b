// A real Valkey server for tests (the valkey-server that scripts/bootstrap
// installs), a minimal RESP client to drive it (PUBLISH, XADD, XRANGE,
// PUBSUB NUMSUB, ACL SETUSER), and a TLS front for it as managed services
// have (Debian's stunnel with a throw-away CA made by openssl; both installed
// by scripts/install-stunnel). Written here rather than taken from npm so the
// tests need no package beyond the lock file's.
import { spawn, execFileSync } from 'node:child_process';
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

/**
 * Creates a throw-away CA and, signed by it, a server certificate for
 * 127.0.0.1 and localhost and a client certificate, with openssl, in `dir`.
 * Returns the file paths: {ca, serverCert, serverKey, clientCert, clientKey}.
 */
export function makeCertificates(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const f = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=edgestream test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const leaf = (name, subject, extensions) => {
    fs.writeFileSync(f(`${name}.ext`), `${extensions}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n`);
    openssl('req', '-new', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subject);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${name}.pem`), '-days', '2', '-extfile', f(`${name}.ext`));
  };
  leaf('server', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  leaf('client', '/CN=edgestream-bridge', 'extendedKeyUsage=clientAuth');
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
  };
}

/** Debian's stunnel, which scripts/install-stunnel installs. */
export function stunnelBinary() {
  for (const bin of ['/usr/bin/stunnel4', '/usr/bin/stunnel']) if (fs.existsSync(bin)) return bin;
  throw new Error('stunnel is missing: run bash scripts/install-stunnel (as root: apt-get install -y stunnel4 openssl)');
}

/**
 * Starts stunnel in front of `valkey` as a TLS server, as managed Valkey
 * services terminate TLS: one port that takes any client, and one that
 * requires a client certificate signed by the CA. Returns {port, mtlsPort, stop}.
 */
export async function startTlsFront({ dir, valkey, certs }) {
  const [port, mtlsPort] = [await freePort(), await freePort()];
  const conf = path.join(dir, 'stunnel.conf');
  const service = (name, accept, extra = '') => `[${name}]\naccept = 127.0.0.1:${accept}\nconnect = 127.0.0.1:${valkey.port}\n` +
    `cert = ${certs.serverCert}\nkey = ${certs.serverKey}\n${extra}`;
  fs.writeFileSync(conf, [
    'foreground = yes', 'pid =', 'debug = warning', '',
    service('tls', port),
    service('mtls', mtlsPort, `CAfile = ${certs.ca}\nverifyChain = yes\nrequireCert = yes\n`),
  ].join('\n'));
  let log = '';
  const proc = spawn(stunnelBinary(), [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => { log = (log + d).slice(-20_000); });
  proc.stderr.on('data', (d) => { log = (log + d).slice(-20_000); });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const deadline = Date.now() + 10_000;
  for (const p of [port, mtlsPort]) {
    for (;;) {
      const open = await new Promise((resolve) => {
        const s = net.createConnection({ port: p, host: '127.0.0.1' });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
      if (open) break;
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`stunnel did not start:\n${log}`);
      await sleep(50);
    }
  }
  return {
    port,
    mtlsPort,
    log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
    },
  };
}
