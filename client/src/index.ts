/**
 * A small typed client for edgestream streams.
 *
 * It reads the stream with `fetch` and adds what a long-lived page needs:
 *
 * - credentials from a callback (`getToken` for a JWT sent as
 *   `Authorization: Bearer`, or `getTicket` for a single-use stream ticket
 *   sent as `?ticket=`), refreshed before they expire;
 * - reconnects that never lose or repeat an event: the client keeps each
 *   channel's position and resumes from it, with jittered backoff that
 *   honours the relay's `retry:` and `Retry-After`;
 * - `stream-reset` as `onReset` (refetch state), `stream-error` and refused
 *   streams as `onError` with the relay's stable `code`, and no retry loop
 *   on refusals that would not change (`403 revoked`, `channel_forbidden`);
 * - optionally one stream per browser (`share`): tabs of an origin elect a
 *   leader that holds the stream and hands it over when it goes;
 * - typed `resource.verb` event handlers with parsed JSON payloads.
 *
 * @example
 * ```ts
 * import { EdgestreamClient } from '@edgestream/client';
 *
 * type Events = { 'scan.progress': { pct: number }; 'scan.completed': { findings: number } };
 *
 * const client = new EdgestreamClient<Events>({
 *   url: 'https://relay.example.com',
 *   channels: [`scan-progress:${tenantId}:${scanId}`],
 *   getToken: () => api.get('/auth/stream-token').then((r) => r.token),
 *   onReset: () => refetchScan(),
 *   onError: (e) => console.warn(e.code, e.message),
 * });
 * client.on('scan.progress', ({ pct }) => render(pct));
 * ```
 */
export {
  EdgestreamClient,
  type ClientOptions,
  type ConnectionState,
  type Credential,
  type EventMapOf,
  type EventType,
  type Role,
  type StreamError,
  type StreamEvent,
} from './client.js';
export { jwtExpiry } from './credential.js';
export { parseCursor, formatCursor } from './cursor.js';
