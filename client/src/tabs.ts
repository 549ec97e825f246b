/**
 * One stream per browser: the tabs of an origin that read the same channels
 * as the same user elect a leader with a Web Lock. The leader holds the
 * stream and relays what it delivers over a BroadcastChannel; the others
 * deliver the same frames. When the leader goes (its tab closes, or it calls
 * `close()`), the lock passes to a waiting tab, which resumes the stream from
 * the last event it delivered itself: history fills whatever the old leader
 * did not pass on, and per-channel positions drop what it passed on twice.
 */
import type { ConnectionState, StreamError } from './client.js';

/**
 * An event as a tab delivers it. `channel` and `seq` say which channel the
 * event moved and to where; `after` is that channel's position before it in
 * the leader's stream, so a follower can tell a gap from a duplicate.
 */
export interface EventFrame {
  t: 'event';
  type: string;
  data: string;
  id: string;
  channel?: string;
  seq?: number;
  after?: number;
}

export type Frame =
  | EventFrame
  | { t: 'open'; channels: string[]; stream: string }
  | { t: 'reset'; channels: string[] }
  | { t: 'error'; error: StreamError }
  | { t: 'state'; state: ConnectionState };

/** What a leader tells a tab that joins, or that lost track. */
export interface Sync {
  state: ConnectionState;
  open: { channels: string[]; stream: string } | undefined;
  positions: Array<[string, number]>;
  /** The last events it delivered, and the latest of each type per channel (its current state), numbered in delivery order. */
  recent: Array<[number, EventFrame]>;
  latest: Array<[number, EventFrame]>;
}

type Message = Frame | { t: 'hello'; from: string } | { t: 'sync'; to: string; sync: Sync } | { t: 'leader' };

/** How many of its last events a tab keeps to fill a joining tab's gap. */
const RECENT = 64;

/** The events a tab keeps so that, as leader, it can bring another tab up to date. */
export class Memory {
  private n = 0;
  private readonly recent: Array<[number, EventFrame]> = [];
  private readonly latest = new Map<string, [number, EventFrame]>();

  record(frame: EventFrame): void {
    const entry: [number, EventFrame] = [++this.n, frame];
    this.recent.push(entry);
    if (this.recent.length > RECENT) this.recent.shift();
    if (frame.channel !== undefined) {
      const key = `${frame.channel}\n${frame.type}`;
      // Re-inserted, so the map stays in delivery order.
      this.latest.delete(key);
      this.latest.set(key, entry);
    }
  }

  forget(channels: readonly string[]): void {
    for (const [key, [, frame]] of this.latest) if (channels.includes(frame.channel!)) this.latest.delete(key);
  }

  snapshot(): Pick<Sync, 'recent' | 'latest'> {
    return { recent: [...this.recent], latest: [...this.latest.values()] };
  }
}

/**
 * What a tab at positions `own` must deliver to reach the leader's state:
 * per channel, the events it missed when the leader still has all of them;
 * else a reset and the channel's current state, as the relay itself would do
 * for a resume point it cannot serve; and for a channel it never saw, the
 * current state, as a stream opened without a cursor starts.
 */
export function catchUp(
  own: ReadonlyMap<string, number>,
  sync: Pick<Sync, 'positions' | 'recent' | 'latest'>,
): { reset: string[]; frames: EventFrame[]; positions: Array<[string, number]> } {
  const reset: string[] = [];
  const wanted = new Map<number, EventFrame>();
  const positions: Array<[string, number]> = [];
  for (const [channel, leader] of sync.positions) {
    const mine = own.get(channel);
    positions.push([channel, Math.max(mine ?? 0, leader)]);
    if (mine !== undefined && mine >= leader) continue;
    const state = sync.latest.filter(([, f]) => f.channel === channel);
    if (mine !== undefined) {
      const missed = sync.recent.filter(([, f]) => f.channel === channel && f.seq! > mine);
      let at = mine;
      for (const [, f] of missed) if (f.after === at) at = f.seq!;
      if (at === leader) {
        for (const [n, f] of missed) wanted.set(n, f);
        continue;
      }
      reset.push(channel);
    }
    for (const [n, f] of state) wanted.set(n, f);
  }
  const frames = [...wanted].sort(([a], [b]) => a - b).map(([, f]) => f);
  return { reset, frames, positions };
}

export interface TabHost {
  /** This tab holds the lock: run the stream, and resolve when the client closes. */
  lead(): Promise<void>;
  /** A frame from the leader. */
  follow(frame: Frame): void;
  /** What a joining tab needs (this tab leads). */
  sync(): Sync;
  /** The leader's answer to this tab's hello. */
  synced(sync: Sync): void;
}

/** The lock, the channel between tabs, and whether this tab is in step with the leader. */
export class TabShare {
  readonly memory = new Memory();
  leading = false;
  private synced = false;
  private readonly id = Math.random().toString(36).slice(2);
  private readonly channel: BroadcastChannel;
  private readonly stop = new AbortController();

  static supported(): boolean {
    return typeof BroadcastChannel === 'function' && Boolean(globalThis.navigator?.locks);
  }

  constructor(name: string, private readonly host: TabHost) {
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (e: MessageEvent<Message>) => this.receive(e.data);
    this.resync();
    navigator.locks
      .request(name, { signal: this.stop.signal }, async () => {
        this.leading = true;
        this.channel.postMessage({ t: 'leader' } satisfies Message);
        await host.lead();
      })
      // Rejected only when close() withdrew the request before the lock came.
      .catch(() => {});
  }

  post(frame: Frame): void {
    this.channel.postMessage(frame);
  }

  /** Drops out of step with the leader until it answers a new hello. */
  resync(): void {
    this.synced = false;
    this.channel.postMessage({ t: 'hello', from: this.id } satisfies Message);
  }

  close(): void {
    this.stop.abort();
    this.channel.close();
  }

  private receive(m: Message) {
    if (this.leading) {
      if (m.t === 'hello') this.channel.postMessage({ t: 'sync', to: m.from, sync: this.host.sync() } satisfies Message);
      return;
    }
    if (m.t === 'sync') {
      if (m.to !== this.id) return;
      this.synced = true;
      this.host.synced(m.sync);
    } else if (m.t === 'leader') {
      // A new leader: a tab still waiting for an answer asks it instead.
      if (!this.synced) this.resync();
    } else if (m.t !== 'hello' && (this.synced || m.t === 'error')) {
      // Until the answer comes, the sync covers what the leader sends.
      this.host.follow(m);
    }
  }
}
