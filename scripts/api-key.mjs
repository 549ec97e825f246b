#!/usr/bin/env node
// Creates an API key: prints the key once (store it with the service that
// uses it) and the command that stores its SHA-256 fingerprint, tenant and
// scopes in the API_KEYS KV namespace. The relay never sees the key itself
// until a request presents it.
//
//   npm run api-key -- --name billing --tenant <uuid> --scope events:publish [--days 90] [--local]
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    tenant: { type: 'string' },
    scope: { type: 'string', default: '' },
    days: { type: 'string' },
    local: { type: 'boolean', default: false },
  },
});
if (!values.name) {
  console.error('usage: npm run api-key -- --name <name> [--tenant <uuid>] [--scope "events:publish"] [--days N] [--local]');
  process.exit(2);
}
const key = `es_${randomBytes(32).toString('base64url')}`;
const fingerprint = createHash('sha256').update(key).digest('hex');
const record = { name: values.name, scope: values.scope };
if (values.tenant) record.tenant = values.tenant;
if (values.days) record.expires_at = Math.floor(Date.now() / 1000) + Number(values.days) * 86400;

const quote = (s) => `'${s.replaceAll("'", "'\\''")}'`;
console.log(`API key (shown once): ${key}\n`);
console.log('Store its fingerprint:\n');
console.log(
  `  npx wrangler kv key put --binding API_KEYS ${fingerprint} ${quote(JSON.stringify(record))}${values.local ? ' --local' : ''}\n`,
);
console.log(`Use it as:  Authorization: Api-Key ${key}`);
