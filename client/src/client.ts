import { resolveCredential, type Credential } from './credential.js';
import { formatCursor, parseCursor } from './cursor.js';
import { isRetryable, reconnectDelay, retryAfterMs } from './retry.js';
import { SseParser, type SseEvent } from './sse.js';
import { catchUp, TabShare, type EventFrame, type Frame, type Sync } from './tabs.js';

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

/** Whether this client holds its own stream, holds it for other tabs too, or reads another tab's. */
export type Role = 'solo' | 'leader' | 'follower';

/** What went wrong, with the relay's stable code when it sent one. */
export interface StreamError {
  /**
   * The relay's code: from `stream-error` (`token_expired`, `lagging`,
   * `kicked`, ...) or from the problem document of a refused stream
   * (`channel_forbidden`, `revoked`, `overloaded`, ...); or `network`,
   * `credentials`, `not_event_stream` for failures the relay did not name.
   */
  code: string;
  message: string;
  /** The HTTP status when the relay refused the stream. */
  status?: number;
  /** True when the client gave up and closed: a refusal that another attempt would not change. */
  fatal: boolean;
  /** When not fatal: the client reconnects in this many milliseconds (0: at once). */
  retryInMs?: number;
}

export { type Credential };

export interface ClientOptions {
  /** The relay's base URL (`https://relay.example.com`) or its full `/v1/stream` URL. */
  url: string | URL;
  /** Channels to read, all of the token's tenant (at most `MAX_CHANNELS_PER_STREAM`). */
  channels: string[];
  /** Returns an access token (JWT), sent as `Authorization: Bearer`. Called before every connection the client opens. */
  getToken?: () => Credential | Promise<Credential>;
  /** Returns a single-use stream ticket, sent as `?ticket=`; takes precedence over `getToken`. */
  getTicket?: () => Credential | Promise<Credential>;
  /** Resume from this cursor (a previous event's `id`). */
  lastEventId?: string;
  /** Refresh the credential and reconnect this many seconds before it expires (default 30). */
  refreshBeforeSeconds?: number;
  /** Reads the stream (default: `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** The reconnect delay until the relay sends its own (`retry:`); doubled per failure in a row (default 1000). */
  reconnectDelayMs?: number;
  /** The longest reconnect delay the client picks by itself; a `Retry-After` may ask for more (default 30000). */
  maxReconnectDelayMs?: number;
  /**
   * Share one stream with this origin's other tabs: the identity the
   * credentials stand for (a user id, say). Tabs with the same `share`, URL
   * and channels read one stream, held by one of them. Ignored where Web
   * Locks or BroadcastChannel are missing.
   */
  share?: string;
  /** The relay accepted the stream (`stream-open`). */
  onOpen?: (info: { channels: string[] }) => void;
  /** The resume point is gone from history: refetch these channels' state. Their current state follows as events. */
  onReset?: (info: { channels: string[] }) => void;
  onError?: (error: StreamError) => void;
  onStateChange?: (state: ConnectionState) => void;
}

const RELAY_EVENTS = new Set(['stream-open', 'stream-reset', 'stream-error']);
/** setTimeout's limit; a credential that lives longer is refreshed at the limit. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long a leader refused for good keeps the lead, so every tab hears of it first. */
const FATAL_HOLD_MS = 1000;

/** How one connection ended, and what that asks of the next one. */
interface Outcome {
  opened: boolean;
  error?: Omit<StreamError, 'fatal' | 'retryInMs'>;
  fatal?: boolean;
  /** Reconnect at once (a refresh, an expired or refused credential). */
  now?: boolean;
  retryAfterMs?: number;
}

type Handler = (data: any, event: StreamEvent<any, any>) => void;

/**
 * A stream of one or more channels that stays connected until `close()`.
 * `E` maps event types to their payloads.
 */
export class EdgestreamClient<E extends EventMapOf<E> = Record<string, unknown>> {
  private readonly options: ClientOptions;
  private readonly channels: string[];
  private readonly streamUrl: URL;
  private readonly fetchImpl: typeof fetch;
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly positions = new Map<string, number>();
  private readonly tabs: TabShare | undefined;
  private current: ConnectionState = 'connecting';
  private closed = false;
  private leading = false;
  private everOpened = false;
  private retryMs: number;
  private refusedCredentials = 0;
  private openStream: { channels: string[]; stream: string } | undefined;
  private opens = 0;
  private connection: AbortController | undefined;
  private wake: (() => void) | undefined;
  private done!: () => void;
  private readonly finished = new Promise<void>((resolve) => (this.done = resolve));

  constructor(options: ClientOptions) {
    if (!options.channels?.length) throw new TypeError('at least one channel is required');
    if (!options.getToken && !options.getTicket) throw new TypeError('getToken or getTicket is required');
    const fetchImpl = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (!fetchImpl) throw new TypeError('no fetch: pass one in options.fetch');
    this.options = options;
    this.fetchImpl = (input, init) => fetchImpl(input, init);
    this.channels = [...new Set(options.channels)];
    this.retryMs = options.reconnectDelayMs ?? 1000;
    const base = new URL(String(options.url));
    this.streamUrl = base.pathname.endsWith('/v1/stream')
      ? new URL(base.pathname, base)
      : new URL(`${base.pathname.replace(/\/?$/, '/')}v1/stream`, base);
    if (options.lastEventId) for (const [channel, seq] of parseCursor(options.lastEventId)) this.positions.set(channel, seq);
    if (options.share !== undefined && TabShare.supported()) {
      const key = JSON.stringify([this.streamUrl.href, [...this.channels].sort(), options.share]);
      this.tabs = new TabShare(`edgestream ${key}`, {
        lead: () => this.lead(),
        follow: (frame) => this.follow(frame),
        sync: () => this.syncState(),
        synced: (sync) => this.syncWith(sync),
      });
    } else {
      void this.lead();
    }
  }

  /** The cursor of the last delivered event: store it to resume later. */
  get lastEventId(): string | undefined {
    return formatCursor(this.channels, this.positions);
  }

  get state(): ConnectionState {
    return this.current;
  }

  get role(): Role {
    return !this.tabs ? 'solo' : this.leading ? 'leader' : 'follower';
  }

  /** Calls `handler` with each event of this type. Returns a function that removes it. */
  on<K extends Extract<keyof E, string>>(type: K, handler: (data: E[K], event: StreamEvent<E[K], K>) => void): () => void {
    if (RELAY_EVENTS.has(type)) throw new TypeError(`${type} is the relay's own frame: use onOpen, onReset or onError`);
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler as Handler);
    return () => {
      set.delete(handler as Handler);
    };
  }

  /** Closes the stream for good; another tab that shares it takes it over. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.connection?.abort();
    this.wake?.();
    this.tabs?.close();
    this.setState('closed');
    this.done();
  }

  // ---- the stream (this client holds it: alone, or for the other tabs)

  /** Runs connections until the client closes; resolves then. */
  private async lead(): Promise<void> {
    this.leading = true;
    let failures = 0;
    while (!this.closed) {
      this.emit({ t: 'state', state: this.everOpened ? 'reconnecting' : 'connecting' });
      const outcome = await this.connect();
      if (this.closed) break;
      if (outcome.opened) failures = 0;
      if (outcome.fatal) {
        this.emit({ t: 'error', error: { ...outcome.error!, fatal: true } });
        this.close();
        // The lead passes on when this returns. The other tabs hear of the
        // refusal over a BroadcastChannel, which the browser does not order
        // with the lock: holding the lead a moment keeps a tab that has not
        // heard yet from taking over and being refused again.
        if (this.tabs) await new Promise((resolve) => setTimeout(resolve, FATAL_HOLD_MS));
        break;
      }
      const delay = outcome.now
        ? 0
        : reconnectDelay({
            baseMs: this.retryMs,
            failures: failures++,
            maxMs: this.options.maxReconnectDelayMs ?? 30_000,
            retryAfterMs: outcome.retryAfterMs,
          });
      if (outcome.error) this.emit({ t: 'error', error: { ...outcome.error, fatal: false, retryInMs: delay } });
      if (this.everOpened) this.emit({ t: 'state', state: 'reconnecting' });
      if (delay) await new Promise<void>((resolve) => this.sleep(delay, resolve));
    }
    return this.finished;
  }

  private sleep(ms: number, resolve: () => void) {
    const timer = setTimeout(() => {
      this.wake = undefined;
      resolve();
    }, ms);
    this.wake = () => {
      clearTimeout(timer);
      resolve();
    };
  }

  /** One connection with a fresh credential, from the current positions, until it ends. */
  private async connect(): Promise<Outcome> {
    const controller = new AbortController();
    this.connection = controller;
    let refresh: ReturnType<typeof setTimeout> | undefined;
    let refreshing = false;
    try {
      const provider = this.options.getTicket ?? this.options.getToken!;
      let cred;
      try {
        cred = await resolveCredential(provider);
      } catch (e) {
        return { opened: false, error: { code: 'credentials', message: messageOf(e) } };
      }
      if (this.closed) return { opened: false };
      if (cred.expiresAt !== undefined) {
        const lifetime = cred.expiresAt - Date.now() / 1000;
        const before = this.options.refreshBeforeSeconds ?? 30;
        // A credential shorter-lived than twice the margin is refreshed halfway.
        const inSeconds = lifetime > before * 2 ? lifetime - before : lifetime / 2;
        refresh = setTimeout(() => {
          refreshing = true;
          controller.abort();
        }, Math.min(MAX_TIMER_MS, Math.max(1000, inSeconds * 1000)));
      }
      const outcome = await this.stream(cred.token, controller.signal);
      if (refreshing && !outcome.error) outcome.now = true;
      return outcome;
    } finally {
      clearTimeout(refresh);
      controller.abort();
    }
  }

  private async stream(token: string, signal: AbortSignal): Promise<Outcome> {
    const url = new URL(this.streamUrl);
    for (const channel of this.channels) url.searchParams.append('channel', channel);
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (this.options.getTicket) url.searchParams.set('ticket', token);
    else headers.Authorization = `Bearer ${token}`;
    // In the query, not Last-Event-ID: a ticket stream then needs no CORS preflight.
    const cursor = this.lastEventId;
    if (cursor) url.searchParams.set('lastEventId', cursor);
    let res: Response;
    try {
      res = await this.fetchImpl(url, { headers, signal });
    } catch (e) {
      return { opened: false, error: signal.aborted ? undefined : { code: 'network', message: messageOf(e) } };
    }
    const type = res.headers.get('Content-Type') ?? '';
    if (!res.ok || !res.body || !type.startsWith('text/event-stream')) return this.refused(res);

    const outcome: Outcome = { opened: false };
    const parser = new SseParser(
      (event) => this.frame(event, outcome),
      (ms) => (this.retryMs = ms),
    );
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    try {
      while (!outcome.error && !this.closed) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
      }
    } catch (e) {
      if (!signal.aborted) outcome.error = { code: 'network', message: messageOf(e) };
    } finally {
      reader.cancel().catch(() => {});
    }
    return outcome;
  }

  /** The relay did not start a stream: say why, and whether to try again. */
  private async refused(res: Response): Promise<Outcome> {
    let problem: { code?: unknown; detail?: unknown; title?: unknown } | undefined;
    if ((res.headers.get('Content-Type') ?? '').includes('json')) problem = await res.json().catch(() => undefined);
    else await res.body?.cancel().catch(() => {});
    const status = res.status;
    const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const error = {
      code: text(problem?.code) ?? (res.ok ? 'not_event_stream' : `http_${status}`),
      message: text(problem?.detail) ?? text(problem?.title) ?? `HTTP ${status}`,
      status,
    };
    if (status === 401) {
      // One more try with a fresh credential; refused twice, it is the credential.
      this.refusedCredentials += 1;
      return { opened: false, error, fatal: this.refusedCredentials > 1, now: true };
    }
    this.refusedCredentials = 0;
    if (!res.ok && !isRetryable(status)) return { opened: false, error, fatal: true };
    return { opened: false, error, retryAfterMs: retryAfterMs(res.headers.get('Retry-After')) };
  }

  /** A frame of this client's own stream. */
  private frame(event: SseEvent, outcome: Outcome) {
    const body = RELAY_EVENTS.has(event.type) ? parse(event.data) : undefined;
    if (event.type === 'stream-open') {
      outcome.opened = true;
      this.everOpened = true;
      this.refusedCredentials = 0;
      const channels = Array.isArray(body?.channels) ? body.channels : [];
      this.emit({ t: 'open', channels, stream: `${Math.random().toString(36).slice(2)}.${++this.opens}` });
    } else if (event.type === 'stream-reset') {
      this.emit({ t: 'reset', channels: Array.isArray(body?.channels) ? body.channels : [] });
    } else if (event.type === 'stream-error') {
      // The relay ends the stream after this frame: stop reading and reconnect.
      const code = typeof body?.code === 'string' ? body.code : 'stream_error';
      outcome.error = { code, message: typeof body?.message === 'string' ? body.message : '' };
      // An expired token needs a new one, not a wait.
      outcome.now = code === 'token_expired';
    } else {
      const frame = this.attribute(event);
      if (frame) this.emit(frame);
    }
  }

  /**
   * Names the channel an event moved, from its cursor and the positions so
   * far; undefined for an event this client has already delivered (a replay
   * after a handover between tabs can bring one).
   */
  private attribute(event: SseEvent): EventFrame | undefined {
    let pairs: Array<[string, number]>;
    try {
      pairs = parseCursor(event.id);
    } catch {
      return { t: 'event', type: event.type, data: event.data, id: event.id };
    }
    const moved = pairs.filter(([channel, seq]) => seq > (this.positions.get(channel) ?? 0));
    if (pairs.length && !moved.length) return undefined;
    const frame: EventFrame = { t: 'event', type: event.type, data: event.data, id: event.id };
    const [channel, seq] = pairs.length === 1 ? pairs[0] : moved.length === 1 ? moved[0] : [];
    if (channel !== undefined) Object.assign(frame, { channel, seq, after: this.positions.get(channel) ?? 0 });
    for (const [c, s] of pairs) this.positions.set(c, s);
    return frame;
  }

  /** Delivers a frame here and, as leader, to the other tabs. */
  private emit(frame: Frame) {
    if (this.closed) return;
    // Posted first: a fatal error closes this client, and its channel with it.
    this.tabs?.post(frame);
    if (frame.t === 'event') this.deliver(frame);
    else this.apply(frame);
  }

  // ---- frames from the leading tab

  private follow(frame: Frame) {
    if (this.leading || this.closed) return;
    if (frame.t !== 'event') return this.apply(frame);
    if (frame.channel === undefined) return this.deliver(frame);
    const mine = this.positions.get(frame.channel) ?? 0;
    if (frame.seq! <= mine) return;
    if (frame.after !== mine) return this.tabs!.resync();
    this.positions.set(frame.channel, frame.seq!);
    this.deliver(frame);
  }

  private syncState(): Sync {
    return {
      state: this.current,
      open: this.current === 'open' ? this.openStream : undefined,
      positions: [...this.positions],
      ...this.tabs!.memory.snapshot(),
    };
  }

  private syncWith(sync: Sync) {
    if (this.leading || this.closed) return;
    const plan = catchUp(this.positions, sync);
    if (plan.reset.length) this.apply({ t: 'reset', channels: plan.reset });
    for (const frame of plan.frames) this.deliver(frame);
    for (const [channel, seq] of plan.positions) this.positions.set(channel, seq);
    if (sync.open && sync.open.stream !== this.openStream?.stream) this.apply({ t: 'open', ...sync.open });
    this.setState(sync.state);
  }

  // ---- delivery, the same for every role

  private apply(frame: Exclude<Frame, EventFrame>) {
    if (frame.t === 'state') {
      this.setState(frame.state);
    } else if (frame.t === 'open') {
      this.openStream = { channels: frame.channels, stream: frame.stream };
      this.everOpened = true;
      this.setState('open');
      this.options.onOpen?.({ channels: frame.channels });
    } else if (frame.t === 'reset') {
      for (const channel of frame.channels) this.positions.delete(channel);
      this.tabs?.memory.forget(frame.channels);
      this.options.onReset?.({ channels: frame.channels });
    } else {
      this.options.onError?.(frame.error);
      if (frame.error.fatal) this.close();
    }
  }

  private deliver(frame: EventFrame) {
    this.tabs?.memory.record(frame);
    const data = parse(frame.data);
    const event: StreamEvent = { type: frame.type, data, id: frame.id, channel: frame.channel, seq: frame.seq };
    for (const handler of [...(this.handlers.get(frame.type) ?? [])]) {
      try {
        handler(data, event);
      } catch (e) {
        // One failing handler must not stop the stream or the other handlers.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  private setState(state: ConnectionState) {
    if (this.current === state || (this.closed && state !== 'closed')) return;
    this.current = state;
    this.options.onStateChange?.(state);
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
