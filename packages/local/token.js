// Access tokens for the local relay, signed HS256 with the secret it was
// started with (node:crypto, no JWT library): the claims the relay checks
// (exp, the token-type claim, the tenant claim, scope, and iss/aud when the
// relay is configured to require them).
import { createHmac } from 'node:crypto';

/** Shortest HS256 secret the relay takes, in bytes. */
export const MIN_SECRET_BYTES = 32;

const SCOPES = { publish: 'events:publish', admin: 'events:admin', platform: 'events:platform' };

/**
 * The claims of a token for `options`, read against the relay's settings
 * (`vars`: TENANT_CLAIM, TOKEN_TYPE_CLAIM, JWT_ISSUER, JWT_AUDIENCE).
 */
export function claimsFor(options = {}, vars = {}, now = Math.floor(Date.now() / 1000)) {
  const { tenant, sub = 'local-user', scope, ttlSeconds = 3600, claims = {} } = options;
  if (tenant === undefined && !options.platform) {
    // The relay treats a credential without a tenant as platform only when
    // its scope says so; anything else is refused as tenant_missing.
    throw new TypeError('a token needs a tenant, or platform: true to act for every tenant (scope events:platform)');
  }
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) throw new RangeError('ttlSeconds must be a positive number');
  const scopes = Object.entries(SCOPES)
    .filter(([flag]) => options[flag])
    .map(([, name]) => name);
  if (scope) scopes.push(...String(scope).split(' ').filter(Boolean));
  const body = { sub, iat: now, exp: now + ttlSeconds, [vars.TOKEN_TYPE_CLAIM || 'token_type']: 'access' };
  if (tenant !== undefined) body[vars.TENANT_CLAIM || 'tenant_id'] = tenant;
  if (scopes.length) body.scope = [...new Set(scopes)].join(' ');
  if (vars.JWT_ISSUER) body.iss = vars.JWT_ISSUER;
  if (vars.JWT_AUDIENCE) body.aud = vars.JWT_AUDIENCE;
  return { ...body, ...claims };
}

/** A compact HS256 JWT of `payload`. */
export function signHs256(payload, secret) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
