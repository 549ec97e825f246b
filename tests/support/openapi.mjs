// A small validator of real HTTP responses against docs/openapi.yaml
// (OpenAPI 3.1, whose schemas are JSON Schema 2020-12, checked with Ajv).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import { ROOT } from './worker.mjs';

const SCHEMA_ID = 'edgestream-openapi';

export function loadOpenApi(file = path.join(ROOT, 'docs/openapi.yaml')) {
  const doc = parse(readFileSync(file, 'utf8'));
  // The component schemas as one JSON Schema document, so that refs between
  // them resolve; `#/components/schemas/X` becomes `<id>#/$defs/X`.
  const rewrite = (node) => {
    if (Array.isArray(node)) return node.map(rewrite);
    if (node && typeof node === 'object') {
      const out = {};
      for (const [k, v] of Object.entries(node)) {
        out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')
          ? `${SCHEMA_ID}#/$defs/${v.slice('#/components/schemas/'.length)}`
          : rewrite(v);
      }
      return out;
    }
    return node;
  };
  // OpenAPI's annotation keywords are not JSON Schema's; formats are annotations.
  const ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: false });
  ajv.addSchema({ $id: SCHEMA_ID, $defs: rewrite(doc.components?.schemas ?? {}) });
  const compiled = new Map();
  const compile = (schema) => {
    const key = JSON.stringify(schema);
    if (!compiled.has(key)) compiled.set(key, ajv.compile(rewrite(schema)));
    return compiled.get(key);
  };

  /** Resolves a local `$ref` (`#/components/...`) of the document. */
  const resolve = (node) => {
    let current = node;
    for (let depth = 0; current?.$ref; depth++) {
      assert.ok(depth < 10, `ref loop at ${current.$ref}`);
      assert.ok(current.$ref.startsWith('#/'), `only local refs: ${current.$ref}`);
      current = current.$ref
        .slice(2)
        .split('/')
        .reduce((n, part) => n?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
      assert.ok(current, `unresolved ref ${node.$ref}`);
    }
    return current;
  };

  /** Validates `value` against a component schema by name; returns the errors. */
  const validateSchema = (name, value) => {
    assert.ok(doc.components.schemas[name], `no schema ${name}`);
    const validate = compile({ $ref: `#/components/schemas/${name}` });
    return validate(value) ? [] : validate.errors;
  };

  /**
   * Asserts that a response (status, headers, body text) is one the document
   * describes for `method path`, and that its JSON body matches the schema.
   */
  const checkResponse = (method, pathName, { status, headers, text }) => {
    const where = `${method.toUpperCase()} ${pathName} -> ${status}`;
    const op = doc.paths?.[pathName]?.[method.toLowerCase()];
    assert.ok(op, `${method.toUpperCase()} ${pathName} is not in the document`);
    const response = resolve(
      op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`] ?? op.responses.default,
    );
    assert.ok(response, `${where}: status not documented (documented: ${Object.keys(op.responses)})`);
    for (const [name, spec] of Object.entries(response.headers ?? {})) {
      const header = resolve(spec);
      const value = headers.get(name);
      if (header.required) assert.ok(value !== null, `${where}: header ${name} is required`);
      if (value !== null && header.schema) {
        const validate = compile(header.schema);
        assert.ok(validate(value), `${where}: header ${name}: ${JSON.stringify(value)} ${ajvText(validate.errors)}`);
      }
    }
    const contentType = (headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (!response.content) {
      assert.equal(text, '', `${where}: no body is documented`);
      return;
    }
    const media = response.content[contentType];
    assert.ok(media, `${where}: content type ${contentType} not documented (${Object.keys(response.content)})`);
    if (!media.schema) return;
    const body = /json$/.test(contentType) ? JSON.parse(text) : text;
    const validate = compile(media.schema);
    assert.ok(validate(body), `${where}: body ${text.slice(0, 300)} ${ajvText(validate.errors)}`);
  };

  /** Every documented `[METHOD, path]`. */
  const operations = () =>
    Object.entries(doc.paths).flatMap(([p, item]) =>
      Object.keys(item)
        .filter((m) => ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'].includes(m))
        .map((m) => [m.toUpperCase(), p]),
    );

  return { doc, resolve, checkResponse, validateSchema, operations };
}

function ajvText(errors) {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}
