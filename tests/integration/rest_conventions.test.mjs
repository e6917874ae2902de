// REST conventions a client relies on: body-less POST actions, 405 with Allow, Idempotency-Key
// (different body → 422; concurrent duplicates → one resource), RFC 3339 timestamps, opaque page
// tokens, and a 401 that names the Bearer scheme.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { Server, tempDir } from './harness.mjs';

let server;
before(async () => { server = await new Server(tempDir()).start(); });
after(async () => { await server.stop(); });

// A raw request, so the test controls exactly which headers go out (fetch adds Content-Length).
function raw(method, urlPath, headers) {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path: urlPath, headers }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end();  // no body, no Content-Length, no Transfer-Encoding
  });
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function assertTimes(obj, where) {
  for (const [k, v] of Object.entries(obj)) {
    if ((k.endsWith('_at') || k === 'time') && v !== null) {
      assert.match(String(v), RFC3339, `${where}.${k} = ${v}`);
      assert.ok(!Number.isNaN(Date.parse(v)), `${where}.${k}`);
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) assertTimes(v, `${where}.${k}`);
  }
}

test('a POST action without a body (no Content-Length) succeeds', async () => {
  const c = await server.createCluster('bodyless');
  const r = await raw('POST', `/api/v1/clusters/${c.id}:pause`, { Authorization: `Bearer ${server.token}` });
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.text).state, 'paused');
  const resumed = await raw('POST', `/api/v1/clusters/${c.id}:resume`, { Authorization: `Bearer ${server.token}` });
  assert.equal(resumed.status, 200, resumed.text);
});

test('a wrong method on a known route is a 405 naming the allowed methods', async () => {
  const r = await server.api('PUT', '/api/v1/projects/p-x', {});
  assert.equal(r.status, 405);
  assert.equal(r.json.error.code, 'method_not_allowed');
  const allow = (await fetch(`${server.url}/api/v1/projects/p-x`, { method: 'PUT', headers: { Authorization: `Bearer ${server.token}` } })).headers.get('allow');
  assert.deepEqual(allow.split(', ').sort(), ['GET', 'PATCH']);
  assert.equal((await server.api('DELETE', '/api/v1/clusters', undefined)).status, 405);
  assert.equal((await server.api('GET', '/api/v1/nowhere', undefined)).status, 404);
});

test('Idempotency-Key: replays, 422 on a different body, scoped per route', async () => {
  const p = (await server.api('POST', '/api/v1/projects', { name: 'idem-p' })).json;
  const url = `/api/v1/projects/${p.id}/clusters`;
  const body = { name: 'idem-a', cloud_provider: 'aws', region: 'us-east-1', tier: 'starter' };
  const h = { 'Idempotency-Key': 'k-1' };
  const first = await server.api('POST', url, body, server.token, h);
  assert.equal(first.status, 201, first.text);
  const again = await server.api('POST', url, body, server.token, h);
  assert.equal(again.json.id, first.json.id);
  assert.equal(again.json.password, undefined);
  const other = await server.api('POST', url, { ...body, name: 'idem-b' }, server.token, h);
  assert.equal(other.status, 422, other.text);
  assert.match(other.json.error.message, /different request body/);
  // The same key on another route is another request.
  const proj = await server.api('POST', '/api/v1/projects', { name: 'idem-q' }, server.token, h);
  assert.equal(proj.status, 201, proj.text);
});

test('20 concurrent identical idempotent creates make one cluster', async () => {
  const p = (await server.api('POST', '/api/v1/projects', { name: 'race-p' })).json;
  const url = `/api/v1/projects/${p.id}/clusters`;
  const body = { name: 'race', cloud_provider: 'aws', region: 'us-east-1', tier: 'starter' };
  const h = { 'Idempotency-Key': 'race-1' };
  const answers = await Promise.all(Array.from({ length: 20 }, () => server.api('POST', url, body, server.token, h)));
  const ok = answers.filter((a) => a.status === 201);
  assert.ok(ok.length >= 1, answers.map((a) => `${a.status} ${a.text}`).join('\n'));
  for (const a of answers) assert.ok(a.status === 201 || a.status === 409, `${a.status} ${a.text}`);
  assert.equal(new Set(ok.map((a) => a.json.id)).size, 1);
  assert.equal(ok.filter((a) => a.json.password).length, 1, 'the password is shown once');
  const list = (await server.api('GET', url)).json.items;
  assert.equal(list.length, 1, JSON.stringify(list));
});

test('every timestamp is RFC 3339 UTC; audit events carry time', async () => {
  const p = (await server.api('POST', '/api/v1/projects', { name: 'times' })).json;
  assertTimes(p, 'project');
  const c = await server.createCluster('times-c');
  assertTimes((await server.api('GET', `/api/v1/clusters/${c.id}`)).json, 'cluster');
  for (const k of (await server.api('GET', `/api/v1/projects/${p.id}/encryption-keys`)).json.items) assertTimes(k, 'key');
  const events = (await server.api('GET', `/api/v1/projects/${p.id}/audit-events`)).json.items;
  assert.ok(events.length >= 1);
  for (const e of events) {
    assert.match(e.time, RFC3339);
    assertTimes(e, 'audit');
  }
});

test('page tokens are opaque; a tampered one is a 400', async () => {
  for (let i = 0; i < 3; i++) await server.api('POST', '/api/v1/projects', { name: `page-${i}` });
  const page1 = (await server.api('GET', '/api/v1/projects?page_size=2')).json;
  const tok = page1.next_page_token;
  assert.ok(tok && !/^\d+$/.test(tok), tok);
  const page2 = await server.api('GET', `/api/v1/projects?page_size=2&page_token=${encodeURIComponent(tok)}`);
  assert.equal(page2.status, 200);
  assert.notEqual(page2.json.items[0].id, page1.items[0].id);
  const tampered = Buffer.from(`0.${Buffer.from(tok, 'base64url').toString('latin1').split('.').slice(1).join('.')}`, 'latin1').toString('base64url');
  for (const bad of ['2', tampered, `${tok}x`]) {
    const r = await server.api('GET', `/api/v1/projects?page_size=2&page_token=${encodeURIComponent(bad)}`);
    assert.equal(r.status, 400, bad);
    assert.match(r.json.error.message, /page_token is not one this server gave out/);
  }
  // A token is bound to its list.
  const other = await server.api('GET', `/api/v1/clusters?page_size=2&page_token=${encodeURIComponent(tok)}`);
  assert.equal(other.status, 400);
});

test('a 401 names the Bearer scheme and gives no CLI advice', async () => {
  const none = await fetch(`${server.url}/api/v1/projects`);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate'), /^Bearer realm="keyward"$/);
  const bad = await fetch(`${server.url}/api/v1/projects`, { headers: { Authorization: 'Bearer kw_nope' } });
  assert.match(bad.headers.get('www-authenticate'), /^Bearer .*error="invalid_token"/);
  const msg = (await bad.json()).error.message;
  assert.doesNotMatch(msg, /KEYWARD_TOKEN|--token|owner\.token/);
});

test('a restore honours Idempotency-Key: the same cluster again, without its password', async () => {
  const c = await server.createCluster('restore-idem');
  const b = server.cli(['backup', 'create', c.id, '--wait', '--output', 'json']);
  assert.equal(b.code, 0, b.stderr);
  const backup = JSON.parse(b.stdout);
  const url = `/api/v1/backups/${backup.id}:restore`;
  const h = { 'Idempotency-Key': 'restore-1' };
  const first = await server.api('POST', url, { name: 'restored-idem' }, server.token, h);
  assert.equal(first.status, 201, first.text);
  assert.ok(first.json.password);
  const again = await server.api('POST', url, { name: 'restored-idem' }, server.token, h);
  assert.equal(again.status, 201);
  assert.equal(again.json.id, first.json.id);
  assert.equal(again.json.password, undefined);
  assert.equal(again.json.secret_shown_once, true);
  assert.equal((await server.api('POST', url, { name: 'restored-other' }, server.token, h)).status, 422);
});
