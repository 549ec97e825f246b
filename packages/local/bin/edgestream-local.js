#!/usr/bin/env node
// edgestream-local: the built relay on loopback, for a local stack.
import { parseArgs } from 'node:util';
import { start } from '../index.js';

const USAGE = `usage: edgestream-local [options]

  --port <n>              port on the host (default 8787; 0 picks a free one)
  --host <address>        default 127.0.0.1
  --secret <text>         JWT_SECRET, at least 32 bytes (default: $JWT_SECRET, else a random one, printed)
  --allowed-origins <a,b> origins that get CORS headers (ALLOWED_ORIGINS)
  --dev-mode              serve the demo page at /demo and POST /dev/token (DEV_MODE=1)
  --var <NAME=value>      any other relay setting; repeatable
  --persist <dir>         keep history in this directory (default: in memory)
  --quiet                 do not print the relay's request log lines
`;

let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string', default: '8787' },
      host: { type: 'string', default: '127.0.0.1' },
      secret: { type: 'string' },
      'allowed-origins': { type: 'string' },
      'dev-mode': { type: 'boolean', default: false },
      var: { type: 'string', multiple: true, default: [] },
      persist: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (e) {
  process.stderr.write(`${e.message}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const vars = {};
for (const pair of args.var) {
  const at = pair.indexOf('=');
  if (at <= 0) {
    process.stderr.write(`--var takes NAME=value, not ${JSON.stringify(pair)}\n`);
    process.exit(2);
  }
  vars[pair.slice(0, at)] = pair.slice(at + 1);
}
if (args['allowed-origins'] !== undefined) vars.ALLOWED_ORIGINS = args['allowed-origins'];
if (args['dev-mode']) vars.DEV_MODE = '1';
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`--port must be 0-65535, not ${JSON.stringify(args.port)}\n`);
  process.exit(2);
}
const secret = args.secret ?? process.env.JWT_SECRET ?? vars.JWT_SECRET;

let relay;
try {
  relay = await start({
    port,
    host: args.host,
    secret,
    vars,
    persist: args.persist,
    onLog: args.quiet ? undefined : (line) => void process.stdout.write(`${line.message}\n`),
  });
} catch (e) {
  process.stderr.write(`edgestream-local: ${e.message}\n`);
  process.exit(1);
}
process.stdout.write(`edgestream-local: ${relay.url}\n`);
if (secret === undefined) {
  // The app's backend needs it to mint tokens; it lives only as long as this process.
  process.stdout.write(`JWT_SECRET=${relay.secret} (generated for this run; pass --secret to keep one)\n`);
}
if (vars.DEV_MODE) process.stdout.write(`demo: ${relay.url}/demo\n`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await relay.stop();
    process.exit(0);
  });
}
