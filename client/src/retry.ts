/**
 * When to reconnect, and when not to. The decisions are plain functions so
 * they can be tested without a network; the client only applies them.
 */

/**
 * The wait before a reconnect: `baseMs` doubled per failure in a row, at most
 * `maxMs`, or the relay's `Retry-After` when it sent one; then spread over up
 * to half as much again, so that streams cut at the same moment (a deploy, a
 * kick of a whole tenant) do not come back at the same moment. Never sooner
 * than asked: `retry:` and `Retry-After` are floors.
 */
export function reconnectDelay(
  { baseMs, failures, maxMs, retryAfterMs }: { baseMs: number; failures: number; maxMs: number; retryAfterMs?: number },
  random: () => number = Math.random,
): number {
  const floor = retryAfterMs ?? Math.min(maxMs, baseMs * 2 ** Math.min(failures, 30));
  return Math.round(floor * (1 + random() / 2));
}

/** `Retry-After` in milliseconds: delay-seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Every HTTP date form starts with the day's name; Date.parse takes far more.
  const at = /^[A-Za-z]/.test(text) ? Date.parse(text) : NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Whether a refused stream is worth another attempt. 401 is retried once
 * with a fresh credential (a token can expire on its way to the relay); 408,
 * 425, 429 and 5xx are passing conditions; every other refusal (a bad
 * channel, a forbidden or revoked user, a wrong URL) would be refused again
 * the same way, so the client stops.
 */
export function isRetryable(status: number): boolean {
  return status === 401 || status === 408 || status === 425 || status === 429 || status >= 500;
}
