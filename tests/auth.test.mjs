// Authentication of GET /v1/stream: where the token may come from, in which
// order, and every reason a token is refused, each with its status, problem
// code and WWW-Authenticate challenge.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair, SignJWT } from 'jose';
import { startWorker, logCollector, TEST_SECRET } from './support/worker.mjs';
import { token, subscriber, unsignedToken, newTenant, channelOf } from './support/tokens.mjs';
import { streamUrl } from './support/sse.mjs';
import { assertProblem, assertStreamOpens, openStream, rawStream, eventsOf } from './support/http.mjs';

let worker;
let base;
const logs = logCollector();

before(async () => {
  worker = await startWorker({ handleStructuredLogs: logs.handleStructuredLogs });
  base = worker.url;
});
after(async () => {
  await worker?.stop();
});

const now = () => Math.floor(Date.now() / 1000);

/** A tenant, one of its channels and a valid subscriber token for it. */
async function fixture() {
  const tenant = newTenant();
  return { tenant, channel: channelOf(tenant), valid: await subscriber(tenant) };
}

/**
 * A valid subscriber token exactly `length` bytes long, padded with a claim.
 * Unpadded base64 is never 4k + 1 characters long, so the header's `typ`
 * comes and goes to reach every length.
 */
async function tokenOfLength(tenant, length) {
  for (const typ of [undefined, 'JWT']) {
    const make = (pad) =>
      new SignJWT({ sub: 'user-1', tenant_id: tenant, token_type: 'access', pad: 'p'.repeat(pad) })
        .setProtectedHeader({ alg: 'HS256', ...(typ ? { typ } : {}) })
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(TEST_SECRET));
    // Four characters carry three bytes: start just below the length.
    const start = Math.max(0, Math.floor(((length - (await make(0)).length) * 3) / 4) - 3);
    for (let pad = start; pad < start + 8; pad++) {
      const jwt = await make(pad);
      if (jwt.length === length) return jwt;
    }
  }
  throw new Error(`no token of ${length} bytes`);
}

/** Asserts GET /v1/stream fails with 401 invalid_token. */
async function assertInvalidToken(channel, options) {
  const r = await openStream(base, [channel], options);
  await assertProblem(r.res, 401, 'invalid_token', { error: 'invalid_token', text: r.text });
}

describe('token sources', () => {
  it('no credentials: 401 missing_credentials, challenge without an error attribute', async () => {
    const { channel } = await fixture();
    const r = await openStream(base, [channel]);
    await assertProblem(r.res, 401, 'missing_credentials', { text: r.text });
  });

  it('accepts a Bearer token in the Authorization header', async () => {
    const { channel, valid } = await fixture();
    await assertStreamOpens(base, [channel], { token: valid });
  });

  it('accepts the Bearer scheme in any case', async () => {
    const { channel, valid } = await fixture();
    await assertStreamOpens(base, [channel], { headers: { Authorization: `bearer ${valid}` } });
  });

  it('accepts ?access_token= when there is no Authorization header', async () => {
    const { channel, valid } = await fixture();
    await assertStreamOpens(base, [channel], { query: { access_token: valid } });
  });

  it('a valid header wins over an invalid ?access_token=', async () => {
    const { channel, valid } = await fixture();
    await assertStreamOpens(base, [channel], { token: valid, query: { access_token: 'not-a-jwt' } });
  });

  it('a valid header wins over a query token of another tenant', async () => {
    const { channel, valid } = await fixture();
    const stranger = await subscriber(newTenant());
    await assertStreamOpens(base, [channel], { token: valid, query: { access_token: stranger } });
  });

  it('an invalid header is 401 even with a valid ?access_token= (no fallback to the query)', async () => {
    const { channel, valid } = await fixture();
    await assertInvalidToken(channel, { token: 'not-a-jwt', query: { access_token: valid } });
  });

  it('an expired header token is 401 even with a valid ?access_token=', async () => {
    const { channel, tenant, valid } = await fixture();
    const expired = await subscriber(tenant, { exp: now() - 3600 });
    await assertInvalidToken(channel, { token: expired, query: { access_token: valid } });
  });

  // (An empty Authorization header cannot be tested here: workerd drops
  // header fields with empty values before the Worker sees the request.)
  for (const [name, header] of [
    ['a scheme without a credential', 'Bearer'],
    ['an unknown scheme', 'Basic dXNlcjpwYXNz'],
    ['a Bearer value with two parts', 'Bearer a b'],
  ]) {
    it(`${name} is 401 invalid_token even with a valid ?access_token=`, async () => {
      const { channel, valid } = await fixture();
      await assertInvalidToken(channel, { headers: { Authorization: header }, query: { access_token: valid } });
    });
  }

  it('an invalid ?access_token= without a header is 401 invalid_token', async () => {
    const { channel } = await fixture();
    await assertInvalidToken(channel, { query: { access_token: 'not-a-jwt' } });
  });

  it('unknown API keys are refused (401 invalid_token), and so is a JWT presented as one', async () => {
    const { channel, valid } = await fixture();
    await assertInvalidToken(channel, { headers: { Authorization: 'Api-Key ek_live_0123456789' } });
    // Not even a valid JWT passed as an "API key", and not with a valid query token.
    await assertInvalidToken(channel, { headers: { Authorization: `Api-Key ${valid}` } });
    await assertInvalidToken(channel, { headers: { Authorization: 'Api-Key k' }, query: { access_token: valid } });
  });

  it('a configuration without the API_KEYS binding refuses every API key and still takes tokens', async () => {
    const unbound = await startWorker({ kvNamespaces: [] });
    try {
      const { channel, valid } = await fixture();
      const r = await openStream(unbound.url, [channel], { headers: { Authorization: 'Api-Key ek_live_0123456789' } });
      const problem = await assertProblem(r.res, 401, 'invalid_token', { error: 'invalid_token', text: r.text });
      assert.match(problem.detail, /API keys are not enabled/);
      await assertStreamOpens(unbound.url, [channel], { headers: { Authorization: `Bearer ${valid}` } });
    } finally {
      await unbound.stop();
    }
  });

  it('an API key is never taken from the query string', async () => {
    const { channel } = await fixture();
    for (const query of [{ api_key: 'ek_live_0123456789' }, { 'Api-Key': 'ek_live_0123456789' }, { apikey: 'k' }]) {
      const r = await openStream(base, [channel], { query });
      await assertProblem(r.res, 401, 'missing_credentials', { text: r.text });
    }
    // Nor as an access_token spelled like the header.
    await assertInvalidToken(channel, { query: { access_token: 'Api-Key ek_live_0123456789' } });
  });
});

describe('JWT verification', () => {
  it('refuses an expired token', async () => {
    const { channel, tenant } = await fixture();
    await assertInvalidToken(channel, { token: await subscriber(tenant, { exp: now() - 3600 }) });
    await assertInvalidToken(channel, { query: { access_token: await subscriber(tenant, { exp: now() - 3600 }) } });
  });

  it('refuses a token signed with another key', async () => {
    const { channel, tenant } = await fixture();
    const forged = await token({ tenant_id: tenant }, { secret: `${TEST_SECRET}-but-not-quite` });
    await assertInvalidToken(channel, { token: forged });
  });

  it('refuses a token whose payload was changed after signing', async () => {
    const { channel, tenant } = await fixture();
    const other = newTenant();
    const [h, , s] = (await subscriber(other)).split('.');
    const payload = Buffer.from(JSON.stringify({ sub: 'user-1', tenant_id: tenant, exp: now() + 300 })).toString('base64url');
    await assertInvalidToken(channel, { token: `${h}.${payload}.${s}` });
  });

  it('refuses alg: none', async () => {
    const { channel, tenant } = await fixture();
    const claims = { sub: 'user-1', tenant_id: tenant, token_type: 'access', exp: now() + 300, iat: now() };
    await assertInvalidToken(channel, { token: unsignedToken(claims) });
    // Also with a signature segment that is not empty.
    await assertInvalidToken(channel, { token: `${unsignedToken(claims)}c2lnbmF0dXJl` });
  });

  it('accepts HS384 and HS512 tokens signed with the secret, and refuses them signed with another', async () => {
    const { channel, tenant } = await fixture();
    for (const alg of ['HS384', 'HS512']) {
      await assertStreamOpens(base, [channel], { token: await token({ tenant_id: tenant }, { alg }) });
      await assertInvalidToken(channel, {
        token: await token({ tenant_id: tenant }, { alg, secret: 'another-secret-of-sufficient-length-0123' }),
      });
    }
  });

  it('refuses an RS256 token when only a secret is configured', async () => {
    const { channel, tenant } = await fixture();
    const { privateKey } = await generateKeyPair('RS256');
    const rs = await new SignJWT({ sub: 'user-1', tenant_id: tenant, token_type: 'access' })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    await assertInvalidToken(channel, { token: rs });
  });

  it('refuses a token without exp', async () => {
    const { channel, tenant } = await fixture();
    await assertInvalidToken(channel, { token: await token({ tenant_id: tenant }, { expiresIn: null }) });
  });

  it('refuses a token that is not valid yet (nbf) or issued in the future (iat)', async () => {
    const { channel, tenant } = await fixture();
    await assertInvalidToken(channel, { token: await subscriber(tenant, { nbf: now() + 3600 }) });
    // Signed here because the shared helper always sets iat to now.
    const futureIat = await new SignJWT({ sub: 'user-1', tenant_id: tenant, token_type: 'access' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuedAt(now() + 3600)
      .setExpirationTime(now() + 7200)
      .sign(new TextEncoder().encode(TEST_SECRET));
    await assertInvalidToken(channel, { token: futureIat });
  });

  it('refuses a SimpleJWT refresh token, accepts token_type access or none', async () => {
    const { channel, tenant } = await fixture();
    await assertInvalidToken(channel, { token: await subscriber(tenant, { token_type: 'refresh' }) });
    await assertInvalidToken(channel, { query: { access_token: await subscriber(tenant, { token_type: 'refresh' }) } });
    await assertStreamOpens(base, [channel], { token: await subscriber(tenant, { token_type: 'access' }) });
    await assertStreamOpens(base, [channel], { token: await subscriber(tenant, { token_type: undefined }) });
  });

  it('refuses a Prowler refresh token (typ: refresh with the tenant), in the header and in the query', async () => {
    const { channel, tenant } = await fixture();
    const prowlerRefresh = await subscriber(tenant, { token_type: undefined, typ: 'refresh' });
    await assertInvalidToken(channel, { token: prowlerRefresh });
    await assertInvalidToken(channel, { query: { access_token: prowlerRefresh } });
    await assertStreamOpens(base, [channel], { token: await subscriber(tenant, { token_type: undefined, typ: 'access' }) });
  });

  it('accepts a token of exactly 8,192 bytes and refuses one of 8,193, in the header and in the query', async () => {
    const { channel, tenant } = await fixture();
    const largest = await tokenOfLength(tenant, 8192);
    const oneMore = await tokenOfLength(tenant, 8193);
    assert.deepEqual([largest.length, oneMore.length], [8192, 8193]);
    await assertStreamOpens(base, [channel], { token: largest });
    await assertStreamOpens(base, [channel], { query: { access_token: largest } });
    await assertInvalidToken(channel, { token: oneMore });
    await assertInvalidToken(channel, { query: { access_token: oneMore } });
  });

  it('accepts SimpleJWT-style tokens (user_id instead of sub)', async () => {
    const { channel, tenant } = await fixture();
    await assertStreamOpens(base, [channel], { token: await subscriber(tenant, { sub: undefined, user_id: 42 }) });
  });

  it('refuses malformed tokens', async () => {
    const { channel, valid } = await fixture();
    const [h, p, s] = valid.split('.');
    for (const bad of [`${h}.${p}`, `${h}.${p}.${s}.${s}`, `${h}..${s}`, `!!.${p}.${s}`, 'a.b.c']) {
      await assertInvalidToken(channel, { token: bad });
    }
  });

  it('problem bodies never echo the token', async () => {
    const { channel, tenant } = await fixture();
    const forged = await token({ tenant_id: tenant }, { secret: 'another-secret-entirely-0123456789' });
    for (const options of [{ token: forged }, { query: { access_token: forged } }]) {
      const r = await openStream(base, [channel], options);
      assert.equal(r.status, 401);
      for (const part of forged.split('.')) assert.ok(!r.text.includes(part), `body echoes a token part: ${r.text}`);
    }
  });
});

describe('token expiry during a stream', () => {
  it('closes the stream with stream-error token_expired when the token expires', async () => {
    const { channel, tenant } = await fixture();
    const shortLived = await subscriber(tenant, { exp: now() + 3 });
    const s = await rawStream(streamUrl(base, [channel]), { headers: { Authorization: `Bearer ${shortLived}` } });
    try {
      assert.equal(s.res.status, 200);
      await s.opened();
      const text = await s.end(10_000);
      assert.ok(s.ended, 'the server ended the stream');
      const last = eventsOf(text).at(-1);
      assert.equal(last.event, 'stream-error', text);
      const data = JSON.parse(last.data);
      assert.equal(data.code, 'token_expired');
      assert.equal(typeof data.message, 'string');
    } finally {
      await s.close();
    }
  });
});
