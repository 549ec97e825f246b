#!/usr/bin/env node
// Mints an HS256 development token from JWT_SECRET in .dev.vars, so the
// README's curl examples can be pasted as they are.
//
//   npm run token -- --tenant <uuid> [--publish] [--platform] [--sub <id>] [--ttl <seconds>]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';

const { values } = parseArgs({
  options: {
    tenant: { type: 'string' },
    publish: { type: 'boolean', default: false },
    platform: { type: 'boolean', default: false },
    sub: { type: 'string', default: 'dev-user' },
    ttl: { type: 'string', default: '3600' },
    vars: { type: 'string', default: '.dev.vars' },
  },
});

function devVar(file, name) {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}=`));
  if (!line) throw new Error(`${name} is not set in ${file}`);
  return line.slice(name.length + 1).trim().replace(/^"(.*)"$/, '$1');
}

if (!values.tenant && !values.platform) {
  console.error('usage: npm run token -- --tenant <uuid> [--publish] | --platform --publish');
  process.exit(2);
}
const claims = { sub: values.sub, token_type: 'access' };
if (values.tenant) claims.tenant_id = values.tenant;
if (values.publish) claims.scope = 'events:publish';
const token = await new SignJWT(claims)
  .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  .setIssuedAt()
  .setExpirationTime(`${Number(values.ttl)}s`)
  .sign(new TextEncoder().encode(devVar(values.vars, 'JWT_SECRET')));
process.stdout.write(`${token}\n`);
