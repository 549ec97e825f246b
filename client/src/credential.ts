/**
 * A credential from `getToken`/`getTicket`: the string itself, or the string
 * with its expiry in Unix seconds. A JWT's `exp` is read by the client when
 * no expiry is given.
 */
export type Credential = string | { token: string; expiresAt?: number };

/** The `exp` claim of a JWT, or undefined for anything else (a ticket, an opaque token). */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || typeof atob !== 'function') return undefined;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** Calls the provider and normalises what it returns. */
export async function resolveCredential(
  provider: () => Credential | Promise<Credential>,
): Promise<{ token: string; expiresAt?: number }> {
  const value = await provider();
  const cred = typeof value === 'string' ? { token: value } : value;
  if (!cred?.token) throw new Error('the credential callback returned no token');
  return { token: cred.token, expiresAt: cred.expiresAt ?? jwtExpiry(cred.token) };
}
