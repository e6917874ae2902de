// The server's log: one JSON object per line on stderr, a line per API request (method, route,
// status, duration, request id, actor id), lifecycle events, and never a secret — no token,
// password or key the test used appears in stderr, the audit log or the metadata.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Redis from 'ioredis';
import { Server, allFiles, sleep, splitEndpoint, tempDir } from './harness.mjs';

let server;
let dir;
before(async () => { dir = tempDir(); server = await new Server(dir).start(); });
after(async () => { await server?.stop('SIGKILL'); });

function lines() {
  return server.stderr.split('\n').filter((l) => l.length > 0);
}

test('every stderr line is a JSON object, with a request line per API call and no secret anywhere', async () => {
  const project = (await server.api('POST', '/api/v1/projects', { name: 'logged' }, server.token,
    { 'X-Request-Id': 'req-logs-1' })).json;
  const member = (await server.api('POST', `/api/v1/projects/${project.id}/members`, { name: 'lou', role: 'project_member' })).json;
  const cluster = server.createCluster('logged');
  const wrong = 'kw_not_a_real_token_0123456789';
  assert.equal((await server.api('GET', '/api/v1/clusters', undefined, wrong)).status, 401);
  assert.equal((await server.api('GET', `/api/v1/projects/${project.id}/clusters`, undefined, member.token)).status, 200);
  const { port } = splitEndpoint(cluster.endpoint);
  const redis = new Redis({ port, host: '127.0.0.1', password: cluster.password, lazyConnect: true, maxRetriesPerRequest: 0 });
  await redis.connect();
  await redis.set('k', 'v');
  redis.disconnect();
  const bad = new Redis({ port, host: '127.0.0.1', password: 'wrong-password-123', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  await bad.connect().catch(() => {});
  bad.disconnect();
  await sleep(300);

  const parsed = lines().map((l) => {
    try { return JSON.parse(l); } catch { assert.fail(`not a JSON line on stderr: ${l}`); }
  });
  for (const p of parsed) {
    assert.match(p.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(p.level), JSON.stringify(p));
    assert.equal(typeof p.event, 'string');
    assert.equal(typeof p.msg, 'string');
  }
  assert.ok(parsed.some((p) => p.event === 'server.ready'), 'no server.ready event');
  const requests = parsed.filter((p) => p.event === 'http.request');
  const created = requests.find((p) => p.request_id === 'req-logs-1');
  assert.ok(created, 'the request id the client sent is in its request line');
  assert.equal(created.method, 'POST');
  assert.equal(created.route, '/api/v1/projects');
  assert.equal(created.status, 201);
  assert.equal(typeof created.duration_ms, 'number');
  assert.match(created.actor_id, /^u-[0-9a-f]{16}$/);
  const memberCall = requests.find((p) => p.route === '/api/v1/projects/{project_id}/clusters' && p.method === 'GET');
  assert.equal(memberCall.actor_id, member.user_id);
  assert.ok(requests.some((p) => p.status === 401 && p.actor_id === undefined));
  assert.ok(requests.length >= 5, `only ${requests.length} request lines`);

  // The secrets this test used, wherever keyward writes.
  const secrets = [server.token, member.token, cluster.password, wrong, 'wrong-password-123',
    fs.readFileSync(path.join(dir, 'escrow.key')).toString('hex').slice(0, 32)];
  const audit = (await server.api('GET', `/api/v1/projects/${project.id}/audit-events?page_size=500`)).text;
  const places = { stderr: server.stderr, stdout: server.output, audit };
  for (const f of allFiles(dir).filter((f) => /metadata\.db|backups\.db/.test(f))) places[f] = fs.readFileSync(f, 'latin1');
  for (const [where, text] of Object.entries(places)) {
    for (const secret of secrets) {
      assert.ok(!text.includes(secret), `a secret (${secret.slice(0, 6)}…) appears in ${where}`);
    }
  }
});

test('--log-level warn drops request lines; a bad level is refused', async () => {
  const quiet = new Server(tempDir(), ['--log-level', 'warn']);
  await quiet.start();
  try {
    await quiet.api('GET', '/api/v1/clusters');
    await sleep(100);
    assert.ok(!quiet.stderr.includes('"event":"http.request"'), quiet.stderr);
  } finally {
    await quiet.stop();
  }
  const bad = new Server(tempDir(), ['--log-level', 'chatty']);
  await assert.rejects(bad.start(), /--log-level must be debug, info, warn or error/);
});
