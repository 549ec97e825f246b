// Compile-time checks of the client's types (tsc -p client/test, no output):
// each `@ts-expect-error` line must be an error, or the build fails.
import { EdgestreamClient, type StreamEvent } from '../src/index.js';

type Events = {
  'scan.progress': { pct: number };
  'scan.completed': { findings: number };
};

declare const client: EdgestreamClient<Events>;

client.on('scan.progress', (data, event) => {
  const pct: number = data.pct;
  const type: 'scan.progress' = event.type;
  const id: string = event.id;
  void [pct, type, id];
  // @ts-expect-error the payload of scan.progress has no `findings`
  void data.findings;
});
client.on('scan.completed', ({ findings }) => void findings);
// @ts-expect-error not an event of this map
client.on('scan.unknown', () => {});
// @ts-expect-error the relay's own frames go to onOpen, onReset and onError
client.on('stream-reset', () => {});

// Event maps must use resource.verb names (or django-eventstream's `message`).
// @ts-expect-error `progress` is not resource.verb
declare const bad: EdgestreamClient<{ progress: { pct: number } }>;
declare const legacy: EdgestreamClient<{ message: string }>;
void [bad, legacy];

// Untyped use: any event name, unknown payloads.
declare const loose: EdgestreamClient;
loose.on('anything.at-all', (data: unknown, event: StreamEvent) => void [data, event]);
