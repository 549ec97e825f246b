// Claim rules that depend on configuration: JWT_ISSUER and JWT_AUDIENCE are
// enforced when set, the tenant is read from the claim TENANT_CLAIM names,
// and the token type from the one TOKEN_TYPE_CLAIM names (set here as
// Prowler sets SimpleJWT's, to typ), while token_type and typ must say
// access whatever the setting.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, logCollector } from './support/worker.mjs';
import { token, newTenant, channelOf } from './support/tokens.mjs';
import { publish } from './support/sse.mjs';
import { assertProblem, assertStreamOpens, openStream } from './support/http.mjs';

const ISSUER = 'https://auth.example';
const AUDIENCE = 'edgestream';
let worker;
let base;
const logs = logCollector();

before(async () => {
  worker = await startWorker({
    vars: { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, TENANT_CLAIM: 'org_id', TOKEN_TYPE_CLAIM: 'typ' },
    handleStructuredLogs: logs.handleStructuredLogs,
  });
  base = worker.url;
});
after(async () => {
  await worker?.stop();
});

/** A subscriber token for `tenant` in the configured claim, right issuer and audience, unless overridden. */
const sub = (tenant, claims = {}) => token({ org_id: tenant, iss: ISSUER, aud: AUDIENCE, ...claims });

async function assertInvalid(channel, tok) {
  const r = await openStream(base, [channel], { token: tok });
  await assertProblem(r.res, 401, 'invalid_token', { error: 'invalid_token', text: r.text });
}

describe('issuer and audience', () => {
  it('accepts the configured issuer and audience (audience alone or in a list)', async () => {
    const t = newTenant();
    await assertStreamOpens(base, [channelOf(t)], { token: await sub(t) });
    await assertStreamOpens(base, [channelOf(t)], { token: await sub(t, { aud: ['other', AUDIENCE] }) });
  });

  it('refuses another issuer or none', async () => {
    const t = newTenant();
    await assertInvalid(channelOf(t), await sub(t, { iss: 'https://evil.example' }));
    await assertInvalid(channelOf(t), await sub(t, { iss: `${ISSUER}/` }));
    await assertInvalid(channelOf(t), await sub(t, { iss: undefined }));
  });

  it('refuses another audience or none', async () => {
    const t = newTenant();
    await assertInvalid(channelOf(t), await sub(t, { aud: 'other' }));
    await assertInvalid(channelOf(t), await sub(t, { aud: ['other', 'another'] }));
    await assertInvalid(channelOf(t), await sub(t, { aud: undefined }));
  });

  it('applies to publishers too', async () => {
    const t = newTenant();
    const c = channelOf(t);
    const bad = await publish(base, await token({ org_id: t, scope: 'events:publish', iss: 'https://evil.example', aud: AUDIENCE }), {
      channel: c,
      event: 'scan.progress',
      data: 1,
    });
    assert.equal(bad.status, 401, bad.text);
    assert.equal(bad.body.code, 'invalid_token');
    const good = await publish(base, await token({ org_id: t, scope: 'events:publish', iss: ISSUER, aud: AUDIENCE }), {
      channel: c,
      event: 'scan.progress',
      data: 1,
    });
    assert.equal(good.status, 202, good.text);
  });
});

describe('TENANT_CLAIM', () => {
  it('reads the tenant from the configured claim', async () => {
    const t = newTenant();
    await assertStreamOpens(base, [channelOf(t)], { token: await sub(t) });
    const r = await openStream(base, [channelOf(newTenant())], { token: await sub(t) });
    await assertProblem(r.res, 403, 'channel_forbidden', { text: r.text });
  });

  it('ignores tenant_id when another claim is configured: 403 tenant_missing', async () => {
    const t = newTenant();
    const r = await openStream(base, [channelOf(t)], { token: await sub(undefined, { tenant_id: t }) });
    await assertProblem(r.res, 403, 'tenant_missing', { text: r.text });
  });
});

describe('TOKEN_TYPE_CLAIM', () => {
  it('accepts typ access, refuses typ refresh', async () => {
    const t = newTenant();
    await assertStreamOpens(base, [channelOf(t)], { token: await sub(t, { token_type: undefined, typ: 'access' }) });
    await assertInvalid(channelOf(t), await sub(t, { token_type: undefined, typ: 'refresh' }));
  });

  it('still refuses token_type refresh, even beside typ access', async () => {
    const t = newTenant();
    await assertInvalid(channelOf(t), await sub(t, { token_type: 'refresh' }));
    await assertInvalid(channelOf(t), await sub(t, { token_type: 'refresh', typ: 'access' }));
  });

  it('applies to publishers too', async () => {
    const t = newTenant();
    const refresh = await token({ org_id: t, scope: 'events:publish', iss: ISSUER, aud: AUDIENCE, token_type: undefined, typ: 'refresh' });
    const bad = await publish(base, refresh, { channel: channelOf(t), event: 'scan.progress', data: 1 });
    assert.equal(bad.status, 401, bad.text);
    assert.equal(bad.body.code, 'invalid_token');
  });
});
