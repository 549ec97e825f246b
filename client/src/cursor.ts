/**
 * Stream cursors: `percent-encode(channel):seq` pairs joined by `,`, the
 * relay's event id (django-eventstream 5's format). The client keeps the
 * position of each channel and rebuilds the cursor from them, so a tab that
 * took its events from another tab can still resume the stream.
 */

/** Parses a cursor into [channel, seq] pairs. */
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

/**
 * The cursor of these positions, in the order of `channels` (the relay's own
 * order), or undefined when no channel has one. Valid channel names need only
 * `:` escaped, which `encodeURIComponent` writes as the relay does (`%3A`).
 */
export function formatCursor(channels: readonly string[], positions: ReadonlyMap<string, number>): string | undefined {
  const parts: string[] = [];
  for (const channel of channels) {
    const seq = positions.get(channel);
    if (seq !== undefined) parts.push(`${encodeURIComponent(channel)}:${seq}`);
  }
  return parts.length ? parts.join(',') : undefined;
}
