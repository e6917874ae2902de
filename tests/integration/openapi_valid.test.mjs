// docs/openapi.json (the document the server serves, kept equal to its route table by
// control_rules.test.mjs) is a valid OpenAPI 3 document by a real validator:
// @apidevtools/swagger-parser checks it against the official OpenAPI 3.0 JSON Schema and resolves
// every $ref. A broken copy is refused, so the check can fail.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { repoRoot } from './harness.mjs';

// From tests/node_modules (tests/package-lock.json); KEYWARD_SWAGGER_PARSER may name the
// package's directory elsewhere (tried before it is in the lock file).
async function loadValidator() {
  try {
    return (await import('@apidevtools/swagger-parser')).default;
  } catch (e) {
    const dir = process.env.KEYWARD_SWAGGER_PARSER;
    if (!dir) return null;
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const main = pkg.exports?.['.']?.import ?? pkg.exports?.['.']?.default ?? pkg.main ?? 'index.js';
    return (await import(pathToFileURL(path.join(dir, typeof main === 'string' ? main : main.default)).href)).default;
  }
}

const document = () => JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'openapi.json'), 'utf8'));

test('docs/openapi.json is a valid OpenAPI 3 document', async (t) => {
  const SwaggerParser = await loadValidator();
  if (!SwaggerParser) {
    console.log('SKIPPED LOUDLY: @apidevtools/swagger-parser is not installed in tests/node_modules '
      + '(tests/package-lock.json); the OpenAPI document was not validated');
    t.skip('SKIPPED LOUDLY: @apidevtools/swagger-parser missing');
    return;
  }
  const api = await SwaggerParser.validate(document());
  assert.match(api.openapi, /^3\./);
  assert.ok(Object.keys(api.paths).length > 10);

  // The validator is real: a dangling $ref and an operation without responses are refused.
  const dangling = document();
  const firstPath = Object.values(dangling.paths)[0];
  const op = Object.values(firstPath).find((o) => o && o.responses);
  op.responses['200'] = { description: 'x', content: { 'application/json': { schema: { $ref: '#/components/schemas/NoSuchSchema' } } } };
  await assert.rejects(SwaggerParser.validate(dangling), /NoSuchSchema|Missing \$ref pointer|Error resolving/);
  const noResponses = document();
  delete Object.values(Object.values(noResponses.paths)[0]).find((o) => o && o.responses).responses;
  await assert.rejects(SwaggerParser.validate(noResponses), /responses/);
});
