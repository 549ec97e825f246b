/**
 * A small typed client for edgestream streams.
 *
 * It wraps an `EventSource` (the browser's, or one passed in, such as the npm
 * `eventsource` package in Node) and adds what a long-lived page needs:
 *
 * - credentials from a callback (`getToken` for a JWT sent as
 *   `?access_token=`, or `getTicket` for a single-use stream ticket sent as
 *   `?ticket=`), refreshed before they expire;
 * - reconnection that never loses the cursor: the client keeps the id of the
 *   last event it delivered and reconnects with `?lastEventId=` (EventSource
 *   cannot set headers; the browser's own reconnects send `Last-Event-ID`);
 * - `stream-reset` as `onReset` (refetch state), `stream-error` and refused
 *   streams as `onError` with the relay's stable `code`;
 * - typed `resource.verb` event handlers with parsed JSON payloads.
 *
 * @example
 * ```ts
 * import { EdgestreamClient } from 'edgestream/client';
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

/** An event type in the `resource.verb` convention (`scan.progress`). */
export type EventType = `${string}.${string}`;

/**
 * Requires every key of an event map to be a `resource.verb` name
 * (`message`, django-eventstream's default type, is allowed too).
 */
export type EventMapOf<E> = {
  [K in keyof E]: K extends EventType | 'message' ? unknown : string extends K ? unknown : never;
};

/** One delivered event. */
export interface StreamEvent<T = unknown, K extends string = string> {
  /** The event type, e.g. `scan.progress`. */
  type: K;
  /** The payload, parsed from JSON. */
  data: T;
  /** The stream cursor after this event: resume from here with `lastEventId`. */
  id: string;
  /** The channel the event was published to, when the cursor tells (always for one channel). */
  channel: string | undefined;
  /** The event's sequence number in its channel, when `channel` is known. */
  seq: number | undefined;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What went wrong, with the relay's stable code when it sent one. */
export interface StreamError {
  /**
   * The relay's code: from `stream-error` (`token_expired`, `lagging`, ...)
   * or from the problem document of a refused stream (`channel_forbidden`,
   * `invalid_token`, ...); or `network`, `credentials` for local failures.
   */
  code: string;
  message: string;
  /** The HTTP status when the relay refused the stream. */
  status?: number;
  /** True when the client gave up and closed (a 400, 401 or 403 is not retried). */
  fatal: boolean;
}

/**
 * A credential from `getToken`/`getTicket`: the string itself, or the string
 * with its expiry in Unix seconds. A JWT's `exp` is read by the client when
 * no expiry is given.
 */
export type Credential = string | { token: string; expiresAt?: number };

/** The part of `EventSource` the client uses. */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: any) => void): void;
  close(): void;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

export interface ClientOptions {
  /** The relay's base URL (`https://relay.example.com`) or its full `/v1/stream` URL. */
  url: string | URL;
  /** Channels to read, all of the token's tenant (at most `MAX_CHANNELS_PER_STREAM`). */
  channels: string[];
  /** Returns an access token (JWT), sent as `?access_token=`. Called before every connection the client opens. */
  getToken?: () => Credential | Promise<Credential>;
  /** Returns a single-use stream ticket, sent as `?ticket=`; takes precedence over `getToken`. */
  getTicket?: () => Credential | Promise<Credential>;
  /** Resume from this cursor (a previous event's `id`). */
  lastEventId?: string;
  /** Refresh the credential and reconnect this many seconds before it expires (default 30). */
  refreshBeforeSeconds?: number;
  /** The EventSource implementation (default: `globalThis.EventSource`). */
  EventSource?: EventSourceConstructor;
  /** Used to read why the relay refused a stream (default: `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** First delay of the client's own reconnects, doubled up to `maxReconnectDelayMs` (default 1000). */
  reconnectDelayMs?: number;
  /** Default 30000. */
  maxReconnectDelayMs?: number;
  /** The relay accepted the stream (`stream-open`). */
  onOpen?: (info: { channels: string[] }) => void;
  /** The resume point is gone from history: refetch these channels' state. Their current state follows as events. */
  onReset?: (info: { channels: string[] }) => void;
  onError?: (error: StreamError) => void;
  onStateChange?: (state: ConnectionState) => void;
}

const RELAY_EVENTS = new Set(['stream-open', 'stream-reset', 'stream-error']);
const CONNECTING = 0;
/** Refusals that a new attempt with a fresh credential would not change. */
const FATAL_STATUSES = new Set([400, 401, 403, 404]);

/** Parses a cursor (`percent-encode(channel):seq` pairs joined by `,`) into [channel, seq] pairs. */
export function parseCursor(id: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  if (!id) return out;
  for (const part of id.split(',')) {
    const at = part.lastIndexOf(':');
    if (at <= 0) throw new Error(`malformed cursor part: ${part}`);
    const seq = Number(part.slice(at + 1));
    if (!Number.isSafeInteger(seq) || seq < 0) throw new Error(`malformed sequence number: ${part}`);
    out.push([decodeURIComponent(part.slice(0, at)), seq]);
  }
  return out;
}

/** The `exp` claim of a JWT, or undefined for anything else (a ticket, an opaque token). */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const json = typeof atob === 'function' ? atob(padded) : undefined;
    if (json === undefined) return undefined;
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

type Handler = (data: any, event: StreamEvent<any, any>) => void;

/**
 * A stream of one or more channels that stays connected until `close()`.
 * `E` maps event types to their payloads.
 */
export class EdgestreamClient<E extends EventMapOf<E> = Record<string, unknown>> {
  private readonly options: ClientOptions;
  private readonly streamUrl: URL;
  private readonly EventSourceImpl: EventSourceConstructor;
  private readonly handlers = new Map<string, Set<Handler>>();
  private es: EventSourceLike | undefined;
  private cursor: string | undefined;
  private positions = new Map<string, number>();
  private current: ConnectionState = 'connecting';
  private closed = false;
  private attempt = 0;
  private generation = 0;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private probe: AbortController | undefined;
  private everOpened = false;

  constructor(options: ClientOptions) {
    if (!options.channels?.length) throw new TypeError('at least one channel is required');
    if (!options.getToken && !options.getTicket) throw new TypeError('getToken or getTicket is required');
    const impl = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
    if (!impl) throw new TypeError('no EventSource: pass one in options.EventSource (e.g. the npm "eventsource" package)');
    this.options = options;
    this.EventSourceImpl = impl;
    this.cursor = options.lastEventId || undefined;
    const base = new URL(String(options.url));
    this.streamUrl = base.pathname.endsWith('/v1/stream')
      ? new URL(base.pathname, base)
      : new URL(`${base.pathname.replace(/\/?$/, '/')}v1/stream`, base);
    void this.connect();
  }

  /** The cursor of the last delivered event: store it to resume later. */
  get lastEventId(): string | undefined {
    return this.cursor;
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** Calls `handler` with each event of this type. Returns a function that removes it. */
  on<K extends Extract<keyof E, string>>(type: K, handler: (data: E[K], event: StreamEvent<E[K], K>) => void): () => void {
    if (RELAY_EVENTS.has(type)) throw new TypeError(`${type} is the relay's own frame: use onOpen, onReset or onError`);
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
      if (this.es) this.listen(this.es, type);
    }
    set.add(handler as Handler);
    return () => {
      set.delete(handler as Handler);
    };
  }

  /** Closes the stream for good. */
  close(): void {
    this.closed = true;
    this.generation += 1;
    this.teardown();
    this.setState('closed');
  }

  // ---- connection lifecycle

  private setState(state: ConnectionState) {
    if (this.current === state) return;
    this.current = state;
    this.options.onStateChange?.(state);
  }

  private teardown() {
    clearTimeout(this.refreshTimer);
    clearTimeout(this.retryTimer);
    this.refreshTimer = undefined;
    this.retryTimer = undefined;
    this.probe?.abort();
    this.probe = undefined;
    this.es?.close();
    this.es = undefined;
  }

  private get usesTicket() {
    return Boolean(this.options.getTicket);
  }

  private async credential(): Promise<{ token: string; expiresAt?: number }> {
    const provider = this.options.getTicket ?? this.options.getToken!;
    const value = await provider();
    const cred = typeof value === 'string' ? { token: value } : value;
    if (!cred?.token) throw new Error('the credential callback returned no token');
    return { token: cred.token, expiresAt: cred.expiresAt ?? jwtExpiry(cred.token) };
  }

  private urlFor(token: string): string {
    const url = new URL(this.streamUrl);
    for (const channel of this.options.channels) url.searchParams.append('channel', channel);
    url.searchParams.set(this.usesTicket ? 'ticket' : 'access_token', token);
    if (this.cursor) url.searchParams.set('lastEventId', this.cursor);
    return url.toString();
  }

  /** Opens a new EventSource with a fresh credential and the current cursor. */
  private async connect(): Promise<void> {
    const generation = this.begin();
    const cred = await this.freshCredential(generation);
    if (cred) this.open(this.urlFor(cred.token), cred.expiresAt);
  }

  /** Starts a new attempt: whatever the previous one left running is stopped. */
  private begin(): number {
    const generation = ++this.generation;
    this.teardown();
    this.setState(this.everOpened ? 'reconnecting' : 'connecting');
    return generation;
  }

  private async freshCredential(generation: number) {
    try {
      const cred = await this.credential();
      return generation === this.generation && !this.closed ? cred : undefined;
    } catch (e) {
      if (generation !== this.generation || this.closed) return undefined;
      this.report({ code: 'credentials', message: messageOf(e), fatal: false });
      this.retryLater();
      return undefined;
    }
  }

  private open(url: string, expiresAt: number | undefined) {
    const es = new this.EventSourceImpl(url);
    this.es = es;
    for (const type of [...RELAY_EVENTS, ...this.handlers.keys()]) this.listen(es, type);
    es.addEventListener('open', () => {
      if (es !== this.es) return;
      this.attempt = 0;
      this.everOpened = true;
      this.setState('open');
    });
    es.addEventListener('error', (event: { message?: string }) => {
      if (es !== this.es) return;
      this.onTransportError(es, event);
    });
    this.scheduleRefresh(expiresAt);
  }

  private scheduleRefresh(expiresAt: number | undefined) {
    if (expiresAt === undefined) return;
    const now = Date.now() / 1000;
    const before = this.options.refreshBeforeSeconds ?? 30;
    const lifetime = expiresAt - now;
    // A credential shorter-lived than twice the margin is refreshed halfway.
    const inSeconds = lifetime > before * 2 ? lifetime - before : lifetime / 2;
    const generation = this.generation;
    this.refreshTimer = setTimeout(() => {
      if (generation === this.generation && !this.closed) void this.connect();
    }, Math.max(1000, inSeconds * 1000));
  }

  private retryLater() {
    if (this.closed) return;
    const base = this.options.reconnectDelayMs ?? 1000;
    const max = this.options.maxReconnectDelayMs ?? 30_000;
    const backoff = Math.min(max, base * 2 ** this.attempt);
    this.attempt += 1;
    this.setState('reconnecting');
    clearTimeout(this.retryTimer);
    const generation = this.generation;
    this.retryTimer = setTimeout(() => {
      if (generation === this.generation && !this.closed) void this.connect();
    }, backoff * (0.8 + Math.random() * 0.4));
  }

  private onTransportError(es: EventSourceLike, event: { message?: string }) {
    if (es.readyState === CONNECTING) {
      if (!this.usesTicket) {
        // The EventSource reconnects by itself and sends Last-Event-ID; the
        // token in its URL is still valid (it is refreshed before expiry).
        this.setState('reconnecting');
        return;
      }
      // A ticket is single use: reconnect with a new one.
      es.close();
      this.es = undefined;
      this.retryLater();
      return;
    }
    // The relay refused the stream and the EventSource gave up for good.
    es.close();
    this.es = undefined;
    void this.recover(event);
  }

  /**
   * EventSource does not say why a stream was refused. Ask the relay again
   * with fetch and a fresh credential (an expired token is the common case
   * and needs nothing more), then reconnect, retry later or give up.
   */
  private async recover(event: { message?: string }) {
    const generation = this.begin();
    const fetchImpl = this.options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (!fetchImpl) {
      this.report({ code: 'network', message: event.message ?? 'the stream failed', fatal: false });
      this.retryLater();
      return;
    }
    const cred = await this.freshCredential(generation);
    if (!cred) return;
    const url = this.urlFor(cred.token);
    let status: number | undefined;
    let problem: { code?: string; detail?: string; title?: string } | undefined;
    const controller = new AbortController();
    this.probe = controller;
    const timer = setTimeout(() => controller.abort(), 10_000);
    try {
      const res = await fetchImpl(url, { headers: { Accept: 'text/event-stream' }, signal: controller.signal });
      status = res.status;
      if (!res.ok) problem = await res.json().catch(() => undefined);
    } catch {
      status = undefined;
    } finally {
      clearTimeout(timer);
      controller.abort();
      if (this.probe === controller) this.probe = undefined;
    }
    if (generation !== this.generation || this.closed) return;
    if (status !== undefined && status >= 200 && status < 300) {
      // The relay accepts the stream again. A ticket was spent on the probe.
      if (this.usesTicket) void this.connect();
      else this.open(url, cred.expiresAt);
      return;
    }
    const fatal = status !== undefined && FATAL_STATUSES.has(status);
    this.report({
      code: problem?.code ?? (status === undefined ? 'network' : `http_${status}`),
      message:
        problem?.detail ?? problem?.title ?? (status === undefined ? 'the relay could not be reached' : `HTTP ${status}`),
      status,
      fatal,
    });
    if (fatal) {
      this.closed = true;
      this.teardown();
      this.setState('closed');
    } else {
      this.retryLater();
    }
  }

  private report(error: StreamError) {
    this.options.onError?.(error);
  }

  // ---- frames

  private listen(es: EventSourceLike, type: string) {
    es.addEventListener(type, (event: { data: string; lastEventId?: string }) => {
      if (es !== this.es) return;
      this.dispatch(es, type, event);
    });
  }

  private dispatch(es: EventSourceLike, type: string, event: { data: string; lastEventId?: string }) {
    if (type === 'stream-open') {
      this.options.onOpen?.({ channels: parse(event.data)?.channels ?? [] });
      return;
    }
    if (type === 'stream-reset') {
      const channels: string[] = parse(event.data)?.channels ?? [];
      for (const channel of channels) this.positions.delete(channel);
      this.options.onReset?.({ channels });
      return;
    }
    if (type === 'stream-error') {
      const body = parse(event.data) ?? {};
      this.report({ code: body.code ?? 'stream_error', message: body.message ?? '', fatal: false });
      // The relay closes the stream after this frame. Reconnect with a fresh
      // credential and the cursor at once, rather than let the EventSource
      // retry with a URL whose token may have expired.
      es.close();
      this.es = undefined;
      if (body.code === 'token_expired') void this.connect();
      else this.retryLater();
      return;
    }
    const id = event.lastEventId ?? '';
    const { channel, seq } = this.advance(id);
    if (id) this.cursor = id;
    const data = parse(event.data);
    const delivered: StreamEvent = { type, data, id, channel, seq };
    for (const handler of [...(this.handlers.get(type) ?? [])]) {
      try {
        handler(data, delivered);
      } catch (e) {
        // One failing handler must not stop the stream or the other handlers.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  /** Updates the known position of each channel; returns the one this event moved. */
  private advance(id: string): { channel: string | undefined; seq: number | undefined } {
    let pairs: Array<[string, number]>;
    try {
      pairs = parseCursor(id);
    } catch {
      return { channel: undefined, seq: undefined };
    }
    // A channel at 0 has had no event yet, so it cannot be the one that moved.
    const moved = pairs.filter(([channel, seq]) => seq > 0 && this.positions.get(channel) !== seq);
    for (const [channel, seq] of pairs) this.positions.set(channel, seq);
    if (pairs.length === 1) return { channel: pairs[0][0], seq: pairs[0][1] };
    if (moved.length === 1) return { channel: moved[0][0], seq: moved[0][1] };
    return { channel: undefined, seq: undefined };
  }
}

function parse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
