// Asymmetric keys in workerd: PEM and JWKS (inline and fetched from
// JWKS_URL), selected by kid and refreshed on an unknown kid, each with the
// attacks that target them; a JWKS_URL that redirects, floods or stalls;
// and every setting that can be wrong, each failing closed with 503 and a
// log line naming it. Tokens are signed by jose, never by the relay.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { constants, createECDH, createPrivateKey, generateKeyPairSync, KeyObject, sign as nodeSign } from 'node:crypto';
import { generateKeyPair, exportSPKI, exportJWK, exportPKCS8, importPKCS8, SignJWT, base64url } from 'jose';
import { startWorker, logCollector, TEST_SECRET } from './support/worker.mjs';
import { subscriber, newTenant, channelOf } from './support/tokens.mjs';
import { streamUrl } from './support/sse.mjs';

const ALGS = ['RS256', 'ES256', 'EdDSA'];

async function sign(key, claims, { alg, kid, expiresIn = '5m' } = {}) {
  return new SignJWT({ token_type: 'access', ...claims })
    .setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}) })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(key);
}

/** Opens a stream and reports its status (and problem code), then lets it go. */
async function streamStatus(worker, tenant, jwt) {
  const res = await fetch(streamUrl(worker.url, [channelOf(tenant)]), {
    headers: { Authorization: `Bearer ${jwt}` },
    // A relay stuck on its issuer fails the test instead of hanging it.
    signal: AbortSignal.timeout(20_000),
  });
  if (res.status === 200) {
    await res.body.cancel();
    return { status: 200, code: undefined };
  }
  return { status: res.status, code: (await res.json()).code };
}

const pairs = {};
/** The RS256 private key, as WebCrypto needs it for RSA-PSS signatures. */
let pssKey;
before(async () => {
  for (const alg of ALGS) pairs[alg] = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  pssKey = await importPKCS8(await exportPKCS8(pairs.RS256.privateKey), 'PS256');
});

describe('JWT_PUBLIC_KEY (PEM)', () => {
  let worker;
  let rsaPem;
  before(async () => {
    rsaPem = await exportSPKI(pairs.RS256.publicKey);
    const pems = await Promise.all(['RS256', 'ES256', 'EdDSA'].map((a) => exportSPKI(pairs[a].publicKey)));
    // No JWT_SECRET: asymmetric keys only.
    worker = await startWorker({ vars: { JWT_SECRET: '', JWT_PUBLIC_KEY: pems.join('\n') } });
  });
  after(() => worker.stop());

  for (const alg of ['RS256', 'PS256', 'ES256', 'EdDSA']) {
    test(`an ${alg} token signed by the matching private key opens a stream`, async () => {
      const key = alg === 'PS256' ? pssKey : pairs[alg].privateKey;
      const tenant = newTenant();
      const jwt = await sign(key, { sub: 'u', tenant_id: tenant }, { alg });
      assert.deepEqual(await streamStatus(worker, tenant, jwt), { status: 200, code: undefined });
    });
  }

  test('algorithm confusion: an HS256 token keyed with the RSA public key is refused', async () => {
    const tenant = newTenant();
    const forged = await new SignJWT({ sub: 'u', tenant_id: tenant })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(rsaPem));
    assert.deepEqual(await streamStatus(worker, tenant, forged), { status: 401, code: 'invalid_token' });
  });

  test('alg none, a signature from another key of the same type, and a swapped alg are refused', async () => {
    const tenant = newTenant();
    const enc = (o) => base64url.encode(JSON.stringify(o));
    const exp = Math.floor(Date.now() / 1000) + 300;
    const none = `${enc({ alg: 'none' })}.${enc({ sub: 'u', tenant_id: tenant, exp })}.`;
    const stranger = (await generateKeyPair('ES256')).privateKey;
    const wrongKey = await sign(stranger, { sub: 'u', tenant_id: tenant }, { alg: 'ES256' });
    const rs = await sign(pairs.RS256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'RS256' });
    const [, payload, signature] = rs.split('.');
    const relabelled = `${enc({ alg: 'ES256' })}.${payload}.${signature}`;
    for (const jwt of [none, wrongKey, relabelled]) {
      assert.deepEqual(await streamStatus(worker, tenant, jwt), { status: 401, code: 'invalid_token' });
    }
  });

  test('a SimpleJWT RS256 access token is accepted and its refresh twin refused', async () => {
    const tenant = newTenant();
    const claims = { user_id: 42, tenant_id: tenant, jti: 'f2b1c3', token_type: 'access' };
    const access = await sign(pairs.RS256.privateKey, claims, { alg: 'RS256' });
    const refresh = await sign(pairs.RS256.privateKey, { ...claims, token_type: 'refresh' }, { alg: 'RS256' });
    assert.equal((await streamStatus(worker, tenant, access)).status, 200);
    assert.deepEqual(await streamStatus(worker, tenant, refresh), { status: 401, code: 'invalid_token' });
  });

  test('an ES256 token verifies in both its low-S and high-S spelling', async () => {
    // Issuers emit either at random (OpenSSL, WebCrypto, Go, Java), so both
    // are accepted; see docs/security.md.
    const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const tenant = newTenant();
    const jwt = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256' });
    const [h, p, sig] = jwt.split('.');
    const raw = base64url.decode(sig);
    const s = BigInt(`0x${Buffer.from(raw.slice(32)).toString('hex')}`);
    const twinS = Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex');
    const twin = `${h}.${p}.${base64url.encode(Buffer.concat([raw.slice(0, 32), twinS]))}`;
    assert.notEqual(twin, jwt);
    assert.equal((await streamStatus(worker, tenant, jwt)).status, 200);
    assert.equal((await streamStatus(worker, tenant, twin)).status, 200);
  });

  test('HS256 tokens are refused when no secret is configured', async () => {
    const tenant = newTenant();
    const hs = await new SignJWT({ sub: 'u', tenant_id: tenant })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('edgestream-test-secret-0123456789abcdef'));
    assert.equal((await streamStatus(worker, tenant, hs)).status, 401);
  });
});

describe('signatures: the strict rules in front of WebCrypto', () => {
  // The relay hands public-key signatures to WebCrypto, after its own
  // rules: the signature's length, Ed25519's canonical S and large-order
  // R, PS256's 32-byte salt. Each forgery here would get past a lenient
  // verifier; each control beside it shows that the refusal is the rule's.
  let worker;
  before(async () => {
    const pems = await Promise.all(['RS256', 'ES256', 'EdDSA'].map((a) => exportSPKI(pairs[a].publicKey)));
    worker = await startWorker({ vars: { JWT_SECRET: '', JWT_PUBLIC_KEY: pems.join('\n') } });
  });
  after(() => worker.stop());

  const enc = (o) => base64url.encode(JSON.stringify(o));
  const claimsFor = (tenant) => ({ sub: 'u', tenant_id: tenant, token_type: 'access', exp: Math.floor(Date.now() / 1000) + 300 });
  const withSignature = (jwt, bytes) => `${jwt.split('.').slice(0, 2).join('.')}.${base64url.encode(bytes)}`;
  const signatureOf = (jwt) => Buffer.from(base64url.decode(jwt.split('.')[2]));
  const refused = { status: 401, code: 'invalid_token' };

  test('an RS256 signature one byte longer, an ES256 signature in DER and an ES256 r or s of zero', async () => {
    const tenant = newTenant();
    const rs = await sign(pairs.RS256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'RS256' });
    const es = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256' });
    assert.equal((await streamStatus(worker, tenant, rs)).status, 200);
    assert.equal((await streamStatus(worker, tenant, es)).status, 200);
    const input = es.split('.').slice(0, 2).join('.');
    const der = nodeSign('sha256', Buffer.from(input), KeyObject.from(pairs.ES256.privateKey));
    const raw = signatureOf(es);
    for (const jwt of [
      withSignature(rs, Buffer.concat([Buffer.alloc(1), signatureOf(rs)])),
      withSignature(es, der),
      withSignature(es, Buffer.concat([Buffer.alloc(32), raw.subarray(32)])),
      withSignature(es, Buffer.concat([raw.subarray(0, 32), Buffer.alloc(32)])),
    ]) {
      assert.deepEqual(await streamStatus(worker, tenant, jwt), refused);
    }
  });

  test('an Ed25519 signature with S + L, and one with a small-order R', async () => {
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const tenant = newTenant();
    const ed = await sign(pairs.EdDSA.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'EdDSA' });
    assert.equal((await streamStatus(worker, tenant, ed)).status, 200);
    const raw = signatureOf(ed);
    const s = BigInt(`0x${Buffer.from(raw.subarray(32)).reverse().toString('hex')}`);
    const sPlusL = Buffer.from((s + L).toString(16).padStart(64, '0'), 'hex').reverse();
    // R the identity point and S zero: "valid" under a small-order key.
    const identity = Buffer.alloc(64);
    identity[0] = 1;
    for (const jwt of [withSignature(ed, Buffer.concat([raw.subarray(0, 32), sPlusL])), withSignature(ed, identity)]) {
      assert.deepEqual(await streamStatus(worker, tenant, jwt), refused);
    }
  });

  test('a PS256 signature is taken with a 32-byte salt only', async () => {
    const tenant = newTenant();
    const input = `${enc({ alg: 'PS256' })}.${enc(claimsFor(tenant))}`;
    const pss = (saltLength) =>
      `${input}.${base64url.encode(
        nodeSign('sha256', Buffer.from(input), {
          key: KeyObject.from(pairs.RS256.privateKey),
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength,
        }),
      )}`;
    assert.equal((await streamStatus(worker, tenant, pss(32))).status, 200);
    for (const saltLength of [0, 20, 64]) {
      assert.deepEqual(await streamStatus(worker, tenant, pss(saltLength)), refused, `salt ${saltLength}`);
    }
  });
});

describe('PEM keys of every accepted shape', () => {
  // A compressed P-256 point, which the relay decompresses before WebCrypto
  // sees the key; and an RSA key with exponent 3, as a PKCS#1 block.
  let worker;
  let ecKey;
  let rsaKey;
  before(async () => {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const spkiPrefix = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
    const compressed = Buffer.concat([spkiPrefix, ecdh.getPublicKey(null, 'compressed')]);
    const pem = (label, der) => `-----BEGIN ${label}-----\n${der.toString('base64').match(/.{1,64}/g).join('\n')}\n-----END ${label}-----\n`;
    const x = ecdh.getPublicKey().subarray(1, 33);
    const y = ecdh.getPublicKey().subarray(33);
    ecKey = createPrivateKey({
      key: { kty: 'EC', crv: 'P-256', x: base64url.encode(x), y: base64url.encode(y), d: base64url.encode(ecdh.getPrivateKey()) },
      format: 'jwk',
    });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
    rsaKey = rsa.privateKey;
    const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' });
    worker = await startWorker({ vars: { JWT_SECRET: '', JWT_PUBLIC_KEY: `${pem('PUBLIC KEY', compressed)}${pkcs1}` } });
  });
  after(() => worker.stop());

  test('an ES256 token verifies with a compressed key, and an RS256 token with exponent 3', async () => {
    const tenant = newTenant();
    const es = await sign(ecKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256' });
    const rs = await sign(rsaKey, { sub: 'u', tenant_id: tenant }, { alg: 'RS256' });
    const stranger = await sign((await generateKeyPair('ES256')).privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256' });
    assert.equal((await streamStatus(worker, tenant, es)).status, 200);
    assert.equal((await streamStatus(worker, tenant, rs)).status, 200);
    assert.deepEqual(await streamStatus(worker, tenant, stranger), { status: 401, code: 'invalid_token' });
  });
});

describe('JWKS (inline)', () => {
  let worker;
  before(async () => {
    const rsa = { ...(await exportJWK(pairs.RS256.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
    const ec = { ...(await exportJWK(pairs.ES256.publicKey)), kid: 'ec-1', use: 'sig' };
    worker = await startWorker({ vars: { JWKS: JSON.stringify({ keys: [rsa, ec] }) } });
  });
  after(() => worker.stop());

  test('keys are selected by kid', async () => {
    const tenant = newTenant();
    const ok = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256', kid: 'ec-1' });
    assert.equal((await streamStatus(worker, tenant, ok)).status, 200);
  });

  test('a kid naming a key of another type, an unknown kid and a key restricted to another alg are refused', async () => {
    const tenant = newTenant();
    const crossed = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256', kid: 'rsa-1' });
    const unknown = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256', kid: '../../etc/passwd' });
    const pss = await sign(pssKey, { sub: 'u', tenant_id: tenant }, { alg: 'PS256', kid: 'rsa-1' });
    for (const jwt of [crossed, unknown, pss]) {
      assert.deepEqual(await streamStatus(worker, tenant, jwt), { status: 401, code: 'invalid_token' });
    }
  });
});

describe('JWKS_URL', () => {
  let worker;
  let issuer;
  let served;
  let hits = 0;
  before(async () => {
    served = { keys: [{ ...(await exportJWK(pairs.ES256.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    issuer = http.createServer((req, res) => {
      hits++;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(served));
    });
    await new Promise((r) => issuer.listen(0, '127.0.0.1', r));
    const { port } = issuer.address();
    worker = await startWorker({
      vars: {
        JWT_SECRET: '',
        JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`,
        JWKS_REFRESH_COOLDOWN_SECONDS: '3',
      },
    });
  });
  after(async () => {
    await worker.stop();
    issuer.close();
  });

  test('the key set is fetched once and cached', async () => {
    const tenant = newTenant();
    for (let i = 0; i < 3; i++) {
      const jwt = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256', kid: 'k1' });
      assert.equal((await streamStatus(worker, tenant, jwt)).status, 200);
    }
    assert.equal(hits, 1);
  });

  test('a rotated-in key is picked up after the cooldown; a flood of unknown kids refetches no sooner', async () => {
    await new Promise((r) => setTimeout(r, 3100));
    const before = hits;
    served = { keys: [...served.keys, { ...(await exportJWK(pairs.EdDSA.publicKey)), kid: 'k2', alg: 'EdDSA', use: 'sig' }] };
    const tenant = newTenant();
    const rotated = await sign(pairs.EdDSA.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'EdDSA', kid: 'k2' });
    assert.equal((await streamStatus(worker, tenant, rotated)).status, 200);
    assert.equal(hits, before + 1);
    for (let i = 0; i < 20; i++) {
      const random = await sign(pairs.EdDSA.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'EdDSA', kid: `random-${i}` });
      assert.equal((await streamStatus(worker, tenant, random)).status, 401);
    }
    assert.equal(hits, before + 1, 'unknown kids within the cooldown caused no fetch');
  });
});

describe('JWKS_URL that redirects, floods or stalls', () => {
  // The issuer answers as `mode` says; the relay must keep the key it
  // already has (k1), answer within its fetch timeout, and log each failure.
  let worker;
  let issuer;
  let elsewhere;
  let mode = 'good';
  let served;
  let elsewhereHits = 0;
  /** Bytes the issuer managed to hand to the relay's connection in the last flooding answer. */
  let written = 0;
  /** Resolves when the relay closed the last flooding or stalled answer. */
  let closed;
  const held = new Set();
  const logs = logCollector();
  let kids = 0;

  /** Writes `chunk` until the relay hangs up, minding backpressure. */
  async function flood(res, chunk) {
    written = 0;
    const gone = once(res, 'close');
    let open = true;
    gone.then(() => (open = false));
    while (open) {
      written += chunk.length;
      if (!res.write(chunk)) await Promise.race([once(res, 'drain'), gone]);
    }
  }

  before(async () => {
    served = { keys: [{ ...(await exportJWK(pairs.ES256.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    // Where a redirect points: a key set with a key the relay must never learn.
    elsewhere = http.createServer(async (req, res) => {
      elsewhereHits++;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ keys: [{ ...(await exportJWK(pairs.EdDSA.publicKey)), kid: 'planted', alg: 'EdDSA' }] }));
    });
    await new Promise((r) => elsewhere.listen(0, '127.0.0.1', r));
    issuer = http.createServer((req, res) => {
      closed = once(res, 'close');
      held.add(res);
      res.on('close', () => held.delete(res));
      const filler = Buffer.alloc(64 * 1024, ' ');
      switch (mode) {
        case 'good':
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify(served));
          break;
        case 'redirect':
          res.writeHead(302, { Location: `http://127.0.0.1:${elsewhere.address().port}/jwks.json` });
          res.end();
          break;
        case 'declared-huge':
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(64 * 1024 * 1024) });
          flood(res, filler);
          break;
        case 'chunked-endless':
          // No Content-Length: only counting what it reads can stop the relay.
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.write('{"keys":[');
          flood(res, filler);
          break;
        case 'silent':
          break;
        case 'stalled-body':
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.write('{"keys":[');
          break;
      }
    });
    await new Promise((r) => issuer.listen(0, '127.0.0.1', r));
    worker = await startWorker({
      vars: {
        JWT_SECRET: '',
        JWKS_URL: `http://127.0.0.1:${issuer.address().port}/.well-known/jwks.json`,
        JWKS_REFRESH_COOLDOWN_SECONDS: '1',
      },
      handleStructuredLogs: logs.handleStructuredLogs,
    });
    const tenant = newTenant();
    const k1 = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256', kid: 'k1' });
    assert.equal((await streamStatus(worker, tenant, k1)).status, 200);
  });
  after(async () => {
    for (const res of held) res.destroy();
    await worker?.stop();
    issuer?.close();
    elsewhere?.close();
  });

  const fetchFailures = () =>
    logs.lines.map((l) => JSON.parse(l.message)).filter((l) => l.msg === 'jwks fetch failed');

  /**
   * With the issuer in `answer` mode: a token with a kid nobody has (which
   * makes the relay refetch) is refused within `withinMs`, the known key
   * still opens a stream, and one failure is logged that matches `reason`.
   */
  async function survives(answer, reason, withinMs) {
    mode = answer;
    // Past the refetch cooldown.
    await new Promise((r) => setTimeout(r, 1100));
    const failuresBefore = fetchFailures().length;
    const tenant = newTenant();
    const unknown = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256', kid: `new-${kids++}` });
    const k1 = await sign(pairs.ES256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'ES256', kid: 'k1' });
    const started = Date.now();
    const refused = streamStatus(worker, tenant, unknown);
    // While that request waits on the issuer, the others are served.
    await new Promise((r) => setTimeout(r, 200));
    const meanwhile = Date.now();
    assert.equal((await streamStatus(worker, tenant, k1)).status, 200);
    assert.ok(Date.now() - meanwhile < 3000, 'a request with a known key does not wait on the issuer');
    assert.deepEqual(await refused, { status: 401, code: 'invalid_token' });
    const took = Date.now() - started;
    assert.ok(took < withinMs, `answered after ${took} ms`);
    assert.equal((await streamStatus(worker, tenant, k1)).status, 200, 'the key already held still works');
    const failures = fetchFailures().slice(failuresBefore);
    assert.equal(failures.length, 1, JSON.stringify(failures));
    assert.match(failures[0].error, reason);
    assert.equal(failures[0].level, 'error');
    return took;
  }

  test('a redirect is not followed', async () => {
    await survives('redirect', /redirect.*302/, 3000);
    assert.equal(elsewhereHits, 0);
    const tenant = newTenant();
    const planted = await sign(pairs.EdDSA.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'EdDSA', kid: 'planted' });
    assert.equal((await streamStatus(worker, tenant, planted)).status, 401);
  });

  test('a body declared larger than 256 KiB is not read', async () => {
    await survives('declared-huge', /larger than 256 KiB/, 3000);
    await closed;
    assert.ok(written < 16 * 1024 * 1024, `the issuer wrote ${written} bytes`);
  });

  test('a chunked body without Content-Length is read only until it passes 256 KiB', async () => {
    await survives('chunked-endless', /larger than 256 KiB/, 5000);
    await closed;
    // Loopback socket buffers hold a few MiB; the body is endless.
    assert.ok(written < 16 * 1024 * 1024, `the issuer wrote ${written} bytes`);
  });

  test('an issuer that never answers is given up after the timeout', async () => {
    await survives('silent', /no complete answer within 5 s/, 9000);
  });

  test('a body that stops halfway is given up after the timeout', async () => {
    await survives('stalled-body', /no complete answer within 5 s/, 9000);
    await closed;
  });

  test('after the issuer recovers, a new key is fetched', async () => {
    served = { keys: [...served.keys, { ...(await exportJWK(pairs.RS256.publicKey)), kid: 'k2', alg: 'RS256' }] };
    mode = 'good';
    await new Promise((r) => setTimeout(r, 1100));
    const tenant = newTenant();
    const k2 = await sign(pairs.RS256.privateKey, { sub: 'u', tenant_id: tenant }, { alg: 'RS256', kid: 'k2' });
    assert.equal((await streamStatus(worker, tenant, k2)).status, 200);
  });
});

describe('misconfiguration: every bad setting is 503 and a log line naming it', () => {
  let rsaPem;
  let privatePem;
  let privateJwk;
  before(async () => {
    rsaPem = await exportSPKI(pairs.RS256.publicKey);
    privatePem = await exportPKCS8(pairs.RS256.privateKey);
    privateJwk = await exportJWK(pairs.ES256.privateKey);
  });

  /** Starts a worker with `vars`, and checks that it fails closed and says why, without echoing `secret`. */
  async function assertMisconfigured(variable, vars, reason, secret) {
    const logs = logCollector();
    const worker = await startWorker({ vars, handleStructuredLogs: logs.handleStructuredLogs });
    try {
      const health = await fetch(new URL('/healthz', worker.url));
      assert.equal(health.status, 503, `${variable}: /healthz`);
      assert.equal((await health.json()).code, 'unavailable');
      const tenant = newTenant();
      const stream = await fetch(streamUrl(worker.url, [channelOf(tenant)]), {
        headers: { Authorization: `Bearer ${await subscriber(tenant)}` },
      });
      assert.equal(stream.status, 503, `${variable}: /v1/stream with a valid token`);
      await stream.body.cancel();
      const lines = logs.lines.map((l) => JSON.parse(l.message)).filter((l) => l.msg === 'configuration');
      assert.ok(lines.length > 0, `${variable}: no configuration log line`);
      assert.equal(lines[0].level, 'error');
      assert.ok(lines[0].error.startsWith(`${variable}: `), lines[0].error);
      assert.match(lines[0].error, reason);
      if (secret) {
        for (const l of logs.lines) assert.ok(!l.message.includes(secret.slice(0, 24)), `${variable}: the log echoes the value`);
      }
    } finally {
      await worker.stop();
    }
  }

  for (const [variable, value, reason] of [
    ['KEEPALIVE_SECONDS', '0', /1 to 3600/],
    ['MAX_CHANNELS_PER_STREAM', '6', /6 outgoing connections/],
    ['MAX_EVENT_BYTES', '64k', /whole number/],
    ['MAX_EVENT_BYTES', '1048577', /from 1 to 1048576 \(an event must fit/],
    ['SHARD_SUBSCRIBERS', '1', /from 2 to 32768/],
    ['HISTORY_SIZE', '-1', /whole number/],
    ['HISTORY_TTL_SECONDS', '1e3', /whole number/],
    ['RETRY_MS', '99', /100 to 600000/],
    ['JWT_LEEWAY_SECONDS', '301', /0 to 300/],
    ['JWKS_REFRESH_COOLDOWN_SECONDS', '0', /1 to 3600/],
    ['ALLOWED_ORIGINS', 'https://app.example/', /exact origin/],
    ['TOKEN_TYPE_CLAIM', 'exp', /another purpose/],
    ['TOKEN_TYPE_CLAIM', 'token type', /claim name/],
  ]) {
    test(`${variable}=${JSON.stringify(value)}`, async () => {
      await assertMisconfigured(variable, { [variable]: value }, reason);
    });
  }

  test('TOKEN_TYPE_CLAIM naming the tenant claim', async () => {
    await assertMisconfigured('TOKEN_TYPE_CLAIM', { TENANT_CLAIM: 'org', TOKEN_TYPE_CLAIM: 'org' }, /another purpose/);
  });

  test('JWT_SECRET under 32 bytes, including the example file\'s placeholder', async () => {
    for (const secret of ['change-me', TEST_SECRET.slice(0, 31)]) {
      await assertMisconfigured('JWT_SECRET', { JWT_SECRET: secret }, /shorter than 32 bytes/, secret.length >= 24 ? secret : undefined);
    }
    // 32 bytes is enough.
    const worker = await startWorker({ vars: { JWT_SECRET: TEST_SECRET.slice(0, 32) } });
    try {
      assert.equal((await fetch(new URL('/healthz', worker.url))).status, 200);
    } finally {
      await worker.stop();
    }
  });

  test('JWT_SECRET holding a public key', async () => {
    await assertMisconfigured('JWT_SECRET', { JWT_SECRET: rsaPem }, /looks like a PEM or JWK key/, rsaPem.split('\n')[1]);
  });

  test('JWT_PUBLIC_KEY that is no PEM, or a private key', async () => {
    await assertMisconfigured('JWT_PUBLIC_KEY', { JWT_PUBLIC_KEY: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5' }, /no PEM public key/);
    await assertMisconfigured('JWT_PUBLIC_KEY', { JWT_PUBLIC_KEY: privatePem }, /private key/, privatePem.split('\n')[1]);
  });

  test('JWKS that does not parse, or holds a private key', async () => {
    await assertMisconfigured('JWKS', { JWT_SECRET: '', JWKS: '{"keys":[' }, /JSON object with a keys array/);
    await assertMisconfigured('JWKS', { JWT_SECRET: '', JWKS: JSON.stringify({ keys: [privateJwk] }) }, /private key/, privateJwk.d);
  });

  test('JWKS_URL that is not https, or not a URL', async () => {
    await assertMisconfigured('JWKS_URL', { JWT_SECRET: '', JWKS_URL: 'http://issuer.example/jwks.json' }, /must be https/);
    await assertMisconfigured('JWKS_URL', { JWT_SECRET: '', JWKS_URL: 'issuer.example/jwks.json' }, /not a URL/);
  });
});
