export interface StartOptions {
  /** Port on `host`; 0 (the default) picks a free one. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The HS256 secret tokens are verified with, at least 32 bytes; default `vars.JWT_SECRET`, else a random one. */
  secret?: string;
  /** Relay settings (`ALLOWED_ORIGINS`, `DEV_MODE`, `HISTORY_SIZE`, ...), over the packaged wrangler.toml's. */
  vars?: Record<string, string | number | boolean>;
  /** Keep Durable Object storage (history, sequence numbers) in this directory; default: in memory, gone at `stop()`. */
  persist?: string;
  /** Receives each of the relay's log lines (`message` is one JSON object); default: dropped. */
  onLog?: (line: { timestamp: number; level: string; message: string }) => void;
}

export interface TokenOptions {
  /** The tenant claim; required unless `platform`. */
  tenant?: string;
  /** Default `local-user`. */
  sub?: string;
  /** Adds `events:publish`. */
  publish?: boolean;
  /** Adds `events:admin` (kicks; with `platform`). */
  admin?: boolean;
  /** Adds `events:platform`: the only way a token without a tenant acts for every tenant. */
  platform?: boolean;
  /** More scopes, space-separated. */
  scope?: string;
  /** Default 3600. */
  ttlSeconds?: number;
  /** Claims to add or override (`jti`, `exp`, ...). */
  claims?: Record<string, unknown>;
}

export interface LocalRelay {
  /** The relay's origin, e.g. `http://127.0.0.1:38211`. */
  url: string;
  /** The secret it verifies HS256 tokens with. */
  secret: string;
  /** An access token the relay accepts, signed with `secret`. */
  mintToken(options: TokenOptions): string;
  /** Stops the relay; in-memory storage is gone. */
  stop(): Promise<void>;
}

/** Starts the built relay in workerd (miniflare) on loopback. */
export function start(options?: StartOptions): Promise<LocalRelay>;
