// Asymmetric keys in workerd: PEM and JWKS (inline and fetched from
// JWKS_URL), selected by kid and refreshed on an unknown kid, each with the
// attacks that target them. Tokens are signed by jose, never by the relay.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { generateKeyPair, exportSPKI, exportJWK, exportPKCS8, importPKCS8, SignJWT, base64url } from 'jose';
import { startWorker } from './support/worker.mjs';
import { newTenant, channelOf } from './support/tokens.mjs';
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

  test('HS256 tokens are refused when no secret is configured', async () => {
    const tenant = newTenant();
    const hs = await new SignJWT({ sub: 'u', tenant_id: tenant })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('edgestream-test-secret-0123456789abcdef'));
    assert.equal((await streamStatus(worker, tenant, hs)).status, 401);
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

describe('misconfiguration', () => {
  test('a private key pasted as JWT_PUBLIC_KEY fails closed with 503', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const worker = await startWorker({ vars: { JWT_SECRET: '', JWKS: JSON.stringify({ keys: [jwk] }) } });
    try {
      const res = await fetch(new URL('/healthz', worker.url));
      assert.equal(res.status, 503);
      assert.equal((await res.json()).code, 'unavailable');
    } finally {
      await worker.stop();
    }
  });
});
