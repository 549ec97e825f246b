// A corpus of forged and malformed tokens against the worker in workerd:
// every one must be refused with 401 invalid_token, while well-formed
// control tokens built the same way (HS256 with the secret, RS256 with the
// configured public key) open the stream, so that a refusal means the
// attack failed, not the algorithm. The same attacks are unit-tested
// natively in core/src/token/forgery_tests.rs; the corpus only grows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createSign } from 'node:crypto';
import { SignJWT, generateKeyPair, exportSPKI, exportPKCS8, base64url } from 'jose';
import { startWorker, TEST_SECRET } from './support/worker.mjs';
import { newTenant, channelOf } from './support/tokens.mjs';
import { streamUrl } from './support/sse.mjs';

const ISSUER = 'https://issuer.example';
const AUDIENCE = 'edgestream';
const LEEWAY = 5;

let worker;
let rsaPem;
let rsaKey;
before(async () => {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  rsaKey = rsa.privateKey;
  rsaPem = await exportSPKI(rsa.publicKey);
  worker = await startWorker({
    vars: { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, JWT_LEEWAY_SECONDS: String(LEEWAY), JWT_PUBLIC_KEY: rsaPem },
  });
});
after(() => worker.stop());

const enc = (value) => base64url.encode(typeof value === 'string' ? value : JSON.stringify(value));
const now = () => Math.floor(Date.now() / 1000);

/** HS256 over whatever header and payload text, with the relay's secret unless told otherwise. */
function hs256(header, payload, secret = TEST_SECRET) {
  return macOver(`${enc(header)}.${enc(payload)}`, secret);
}

/** HS256 over exactly these segment characters. */
function macOver(input, secret = TEST_SECRET) {
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/**
 * The segment with the unused low bits of its last character set: the same
 * bytes to a lenient base64 decoder, a second spelling to a strict one.
 * Only segments of 4k + 2 or 4k + 3 characters have such bits.
 */
function withTrailingBits(segment) {
  assert.ok(segment.length % 4 === 2 || segment.length % 4 === 3, segment);
  const last = ALPHABET.indexOf(segment.at(-1));
  return segment.slice(0, -1) + ALPHABET[last | 1];
}

/** A payload text of `claims` padded until its base64 leaves trailing bits. */
function twistablePayload(claims) {
  for (let pad = 0; ; pad++) {
    const text = enc({ ...claims, pad: 'p'.repeat(pad) });
    if (text.length % 4 !== 0) return text;
  }
}

async function status(tenant, jwt) {
  const res = await fetch(streamUrl(worker.url, [channelOf(tenant)]), { headers: { Authorization: `Bearer ${jwt}` } });
  if (res.status === 200) {
    await res.body.cancel();
    return { status: 200 };
  }
  return { status: res.status, code: (await res.json()).code };
}

test('a corpus of forged and malformed tokens is refused, a control token is accepted', async () => {
  const tenant = newTenant();
  const claims = (extra = {}) => ({
    sub: 'user-1', tenant_id: tenant, iss: ISSUER, aud: AUDIENCE, exp: now() + 300, iat: now(), token_type: 'access', ...extra,
  });
  const header = { alg: 'HS256', typ: 'JWT' };
  const valid = hs256(header, claims());
  assert.deepEqual(await status(tenant, valid), { status: 200 }, 'control token');
  const [vh, vp, vs] = valid.split('.');

  const other = newTenant();
  // Header of 30 characters (4k + 2): its last one has unused bits.
  const oddHeader = enc({ alg: 'HS256', x: '' });
  const rsSigned = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256' }).sign(rsaKey);
  const rsaPkcs8 = await exportPKCS8(rsaKey);
  const rs256Over = (input) => `${input}.${createSign('RSA-SHA256').update(input).sign(rsaPkcs8, 'base64url')}`;
  assert.deepEqual(await status(tenant, rsSigned), { status: 200 }, 'RS256 control token');
  // The hand-made signers below, on an unremarkable token: accepted.
  assert.deepEqual(await status(tenant, rs256Over(`${enc({ alg: 'RS256' })}.${vp}`)), { status: 200 }, 'RS256 by node:crypto');
  assert.deepEqual(await status(tenant, macOver(`${oddHeader}.${twistablePayload(claims())}`)), { status: 200 }, 'odd-length segments');
  const { token_type: _, ...untyped } = claims();
  const corpus = {
    'alg none, empty signature': `${enc({ alg: 'none' })}.${enc(claims())}.`,
    'alg None': `${enc({ alg: 'None' })}.${enc(claims())}.`,
    'alg NONE with a signature': `${enc({ alg: 'NONE' })}.${enc(claims())}.${vs}`,
    'alg nOnE': `${enc({ alg: 'nOnE' })}.${enc(claims())}.`,
    'alg hs256 (wrong case)': hs256({ alg: 'hs256' }, claims()),
    'alg missing': hs256({ typ: 'JWT' }, claims()),
    'alg as a number': hs256({ alg: 256 }, claims()),
    'alg confusion: HS256 keyed with the RSA public key PEM': hs256(header, claims(), rsaPem),
    'RS256 signature relabelled HS256': `${enc(header)}.${rsSigned.split('.')[1]}.${rsSigned.split('.')[2]}`,
    'HS256 signature relabelled RS256': `${enc({ alg: 'RS256' })}.${vp}.${vs}`,
    'signed with another secret': hs256(header, claims(), 'another-secret-0123456789abcdef0123'),
    'signature truncated': `${vh}.${vp}.${vs.slice(0, -4)}`,
    'signature empty': `${vh}.${vp}.`,
    'payload changed after signing': `${vh}.${enc(claims({ tenant_id: newTenant() }))}.${vs}`,
    'bad base64 in the payload': `${vh}.${vp.slice(0, -2)}*!.${vs}`,
    'padded base64': `${vh}.${vp}==.${vs}`,
    'standard-alphabet base64': `${vh}.${vp.replaceAll('-', '+').replaceAll('_', '/')}+.${vs}`,
    'two segments': `${vh}.${vp}`,
    'four segments': `${valid}.${vs}`,
    'huge header': hs256({ ...header, pad: 'x'.repeat(9000) }, claims()),
    'header not an object': hs256('"HS256"', claims()),
    'payload not an object': hs256(header, '[1,2,3]'),
    'crit header': hs256({ ...header, crit: ['exp'] }, claims()),
    'wrong audience': hs256(header, claims({ aud: 'someone-else' })),
    'audience list without ours': hs256(header, claims({ aud: ['a', 'b'] })),
    'wrong issuer': hs256(header, claims({ iss: 'https://evil.example' })),
    'no issuer': hs256(header, claims({ iss: undefined })),
    'expired one second past the leeway': hs256(header, claims({ exp: now() - LEEWAY - 1 })),
    'no exp': hs256(header, claims({ exp: undefined })),
    'exp as a string': hs256(header, claims({ exp: String(now() + 300) })),
    'nbf in the future': hs256(header, claims({ nbf: now() + LEEWAY + 60 })),
    'iat in the future': hs256(header, claims({ iat: now() + LEEWAY + 60 })),
    'refresh token': hs256(header, claims({ token_type: 'refresh' })),
    'tenant as a number': hs256(header, claims({ tenant_id: 42 })),
    'tenant null': hs256(header, claims({ tenant_id: null })),
    'tenant as an object': hs256(header, claims({ tenant_id: { id: tenant } })),
    'scope as a list': hs256(header, claims({ scope: ['events:publish'] })),
    'kid path traversal': hs256({ ...header, kid: '../../../../etc/passwd' }, claims(), 'x'),
    'kid SQL injection': hs256({ ...header, kid: "' OR 1=1 --" }, claims(), 'x'),
    'kid not a string': hs256({ ...header, kid: { $ne: null } }, claims()),
    'embedded jwk header with its own key': hs256({ ...header, jwk: { kty: 'oct', k: base64url.encode('attacker') } }, claims(), 'attacker'),
    'not a JWT at all': 'hello',
    // Duplicate JSON members: the lexically last one used to win.
    'header {"alg":"none","alg":"HS256"} with a valid MAC': macOver(`${enc('{"alg":"none","alg":"HS256"}')}.${vp}`),
    'header {"alg":"HS256","alg":"HS256"}': macOver(`${enc('{"alg":"HS256","alg":"HS256"}')}.${vp}`),
    'header alg twice, once escaped': macOver(`${enc('{"alg":"HS256","\\u0061lg":"HS256"}')}.${vp}`),
    'header with a duplicate inside a nested object': macOver(`${enc('{"alg":"HS256","x":{"a":1,"a":1}}')}.${vp}`),
    'payload with two tenant_ids, ours last': macOver(
      `${vh}.${enc(JSON.stringify(claims()).replace('{', `{"tenant_id":"${other}",`))}`,
    ),
    'payload with two tenant_ids, ours first': macOver(
      `${vh}.${enc(JSON.stringify(claims()).replace('}', `,"tenant_id":"${other}"}`))}`,
    ),
    'payload with a duplicate inside a nested object': macOver(
      `${vh}.${enc(JSON.stringify(claims()).replace('}', ',"ctx":{"role":"user","role":"admin"}}'))}`,
    ),
    'RS256 payload with two tenant_ids': rs256Over(
      `${enc({ alg: 'RS256' })}.${enc(JSON.stringify(claims()).replace('{', `{"tenant_id":"${other}",`))}`,
    ),
    // Token types: Prowler's refresh tokens say typ, and carry the tenant.
    'Prowler refresh token (typ refresh, tenant_id)': hs256(header, { ...untyped, typ: 'refresh' }),
    'RS256 refresh token with typ': await new SignJWT({ ...untyped, typ: 'refresh' }).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).sign(rsaKey),
    'typ access but token_type refresh': hs256(header, claims({ token_type: 'refresh', typ: 'access' })),
    'payload typ JWT': hs256(header, { ...untyped, typ: 'JWT' }),
    // Non-canonical base64: trailing bits set in the header, and in the
    // payload with the MAC computed over the twisted text.
    'header with non-zero trailing bits': macOver(`${withTrailingBits(oddHeader)}.${vp}`),
    'payload with non-zero trailing bits, signed as such': macOver(`${vh}.${withTrailingBits(twistablePayload(claims()))}`),
  };
  // `JSON.stringify` drops undefined claims, which is how "no exp" and "no issuer" are made.
  assert.ok(Object.keys(corpus).length >= 30);
  const failures = [];
  for (const [name, jwt] of Object.entries(corpus)) {
    const got = await status(tenant, jwt);
    if (got.status !== 401 || got.code !== 'invalid_token') failures.push(`${name}: ${JSON.stringify(got)}`);
  }
  assert.deepEqual(failures, []);
});
