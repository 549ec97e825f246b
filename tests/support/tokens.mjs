// JWTs for tests, signed by an independent library (jose), never by the
// code under test.
import { SignJWT, base64url } from 'jose';
import { randomUUID } from 'node:crypto';
import { TEST_SECRET } from './worker.mjs';

const key = new TextEncoder().encode(TEST_SECRET);

/** A subscriber or publisher token. `claims` override the defaults; a claim set to undefined is removed. */
export async function token(claims = {}, { secret = key, alg = 'HS256', expiresIn = '5m' } = {}) {
  const body = { sub: 'user-1', token_type: 'access', ...claims };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  let jwt = new SignJWT(body).setProtectedHeader({ alg, typ: 'JWT' }).setIssuedAt();
  if (expiresIn !== null && body.exp === undefined) jwt = jwt.setExpirationTime(expiresIn);
  return jwt.sign(typeof secret === 'string' ? new TextEncoder().encode(secret) : secret);
}

export const subscriber = (tenant, claims = {}) => token({ tenant_id: tenant, ...claims });
export const publisher = (tenant, claims = {}) =>
  token({ tenant_id: tenant, scope: 'events:publish', ...claims });
/** A platform publisher: no tenant claim and the platform scope, may publish to any tenant. */
export const platformPublisher = () => token({ scope: 'events:publish events:platform' });

/** An unsigned token (`alg: none`), built by hand since no library will sign one. */
export function unsignedToken(claims) {
  const enc = (o) => base64url.encode(JSON.stringify(o));
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
}

export const newTenant = () => randomUUID();
export const channelOf = (tenant, resource = randomUUID().slice(0, 8), prefix = 'scan-progress') =>
  `${prefix}:${tenant}:${resource}`;
