/**
 * An incremental `text/event-stream` parser, as the HTML standard's
 * "interpreting an event stream" describes it. The client reads the stream
 * with `fetch` rather than `EventSource` because only then does it see what
 * an `EventSource` keeps to itself: the `retry:` delay, the status and
 * `Retry-After` of a refused stream, and its problem document.
 */

export interface SseEvent {
  /** `event:`, or `message` when the frame has none. */
  type: string;
  /** The `data:` lines joined by `\n`. */
  data: string;
  /** The last `id:` seen so far in this stream (it carries over, as in EventSource). */
  id: string;
}

export class SseParser {
  private partial = '';
  /** The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to it. */
  private afterCR = false;
  private data: string[] = [];
  private type = '';
  private lastId = '';

  constructor(
    private readonly onEvent: (event: SseEvent) => void,
    private readonly onRetry: (ms: number) => void,
  ) {}

  /** Feeds decoded text; complete frames are dispatched before it returns. */
  push(text: string): void {
    let start = 0;
    if (this.afterCR && text.startsWith('\n')) start = 1;
    this.afterCR = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.partial + text.slice(start, i));
      this.partial = '';
      if (c === 13) {
        if (i + 1 === text.length) this.afterCR = true;
        else if (text.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.partial += text.slice(start);
  }

  private line(line: string) {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.type = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.onRetry(Number(value));
  }

  private dispatch() {
    const type = this.type || 'message';
    this.type = '';
    if (!this.data.length) return;
    const data = this.data.join('\n');
    this.data = [];
    this.onEvent({ type, data, id: this.lastId });
  }
}
