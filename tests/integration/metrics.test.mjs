// GET /metrics on a real `keyward serve`: the exposition parses strictly, and the series move with
// what clients and the API do (Redis commands and connections, cluster states, escrow unwraps).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import Redis from 'ioredis';
import { Server, haveCommand, sleep, splitEndpoint, tempDir } from './harness.mjs';
import { checkHistograms, parsePromText, sampleValue } from '../support/prom_text.mjs';

let server;
before(async () => { server = await new Server(tempDir()).start(); });
after(async () => { await server.stop(); });

// Fetched from 127.0.0.1 without a token: loopback peers need none.
async function scrape() {
  const r = await fetch(`${server.url}/metrics`);
  const text = await r.text();
  assert.equal(r.status, 200, text);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const families = parsePromText(text);  // throws on any malformed line or family without TYPE
  checkHistograms(families);
  return { text, families, v: (name, labels) => sampleValue(families, name, labels) };
}

async function waitFor(what, f) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const s = await scrape();
    if (f(s)) return s;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n${s.text}`);
    await sleep(50);
  }
}

test('the parser rejects malformed expositions', () => {
  const ok = '# HELP a_total A \\\\ b\\n.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n",y=""} 1.5e3\n';
  assert.equal(sampleValue(parsePromText(ok), 'a_total', { x: 'q"\\\n' }), 1500);
  for (const bad of [
    'a_total 1\n',                                      // no TYPE
    '# TYPE a counter\na{x="1"} one\n',                 // value
    '# TYPE a counter\na{x="1} 1\n',                    // unterminated
    '# TYPE a counter\na{x="\\t"} 1\n',                 // bad escape
    '# TYPE a counter\na{x="1",x="2"} 1\n',             // label twice
    '# TYPE a counter\na{1x="1"} 1\n',                  // label name
    '# TYPE a counter\n# TYPE a gauge\n',               // TYPE twice
    '# TYPE a counter\na 1 2 3\n',                      // trailing junk
    '# TYPE a wibble\n',                                // type
    '# HELP a x\n',                                     // HELP without TYPE
    '# TYPE a counter\na 1',                            // no final newline
  ]) {
    assert.throws(() => parsePromText(bad), undefined, JSON.stringify(bad));
  }
  const hist = (inf) => `# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} ${inf}\nh_sum 3\nh_count 2\n`;
  checkHistograms(parsePromText(hist(2)));
  assert.throws(() => checkHistograms(parsePromText(hist(1))));
});

test('every family is present and typed before any cluster exists', async () => {
  const { families, v } = await scrape();
  const types = Object.fromEntries([...families.values()].map((f) => [f.name, f.type]));
  assert.equal(types.keyward_clusters, 'gauge');
  assert.equal(types.keyward_kms_requests_total, 'counter');
  assert.equal(types.keyward_kms_request_duration_seconds, 'histogram');
  assert.equal(types.keyward_key_checks_total, 'counter');
  assert.equal(types.keyward_redis_commands_total, 'counter');
  assert.equal(types.keyward_redis_connections, 'gauge');
  assert.equal(types.keyward_build_info, 'gauge');
  for (const state of ['creating', 'available', 'paused', 'inaccessible', 'degraded', 'failed', 'deleting', 'deleted']) {
    assert.equal(v('keyward_clusters', { state }), 0, state);
  }
  for (const result of ['ok', 'lost', 'transient']) assert.equal(v('keyward_key_checks_total', { result }), 0);
  assert.ok(v('process_resident_memory_bytes') > 1 << 20);
  assert.ok(v('process_open_fds') > 3);
});

test('Redis commands, connections, cluster states and escrow unwraps move the series', async () => {
  const cluster = server.createCluster('metered');
  const id = cluster.id;
  const { host, port } = splitEndpoint(cluster.endpoint);
  let s = await scrape();
  assert.equal(s.v('keyward_clusters', { state: 'available' }), 1);
  assert.equal(s.v('keyward_redis_connections', { cluster: id }), 0);

  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true, enableReadyCheck: false });
  await redis.connect();
  try {
    s = await waitFor('the connection', (x) => x.v('keyward_redis_connections', { cluster: id }) === 1);
    const cmd = (command) => s.v('keyward_redis_commands_total', { cluster: id, command }) ?? 0;
    const before = { set: cmd('set'), get: cmd('get'), unknown: cmd('unknown') };
    const SETS = 7;
    const GETS = 5;
    for (let i = 0; i < SETS; i++) await redis.set(`k${i}`, `v${i}`);
    for (let i = 0; i < GETS; i++) assert.equal(await redis.get(`k${i}`), `v${i}`);
    await assert.rejects(redis.call('NOSUCHCOMMAND', 'x'), /unknown command/);
    await assert.rejects(redis.call('ALSO-NOT-A-COMMAND'), /unknown command/);
    s = await scrape();
    assert.equal(cmd('set'), before.set + SETS);
    assert.equal(cmd('get'), before.get + GETS);
    assert.equal(cmd('unknown'), before.unknown + 2);
    assert.ok(!/nosuchcommand|also-not/i.test(s.text), 'client-chosen names never become label values');
    assert.equal(s.v('keyward_redis_connections', { cluster: id }), 1);
  } finally {
    redis.disconnect();
  }
  await waitFor('the connection to close', (x) => x.v('keyward_redis_connections', { cluster: id }) === 0);

  const paused = await server.api('POST', `/api/v1/clusters/${id}:pause`);
  assert.equal(paused.status, 200, paused.text);
  s = await scrape();
  assert.equal(s.v('keyward_clusters', { state: 'paused' }), 1);
  assert.equal(s.v('keyward_clusters', { state: 'available' }), 0);
  assert.equal(s.v('keyward_redis_connections', { cluster: id }), undefined, 'a removed cluster has no series');
  assert.equal(s.v('keyward_redis_commands_total', { cluster: id, command: 'set' }), undefined);

  const unwrap = { provider: 'escrow', operation: 'unwrap' };
  const unwrapsBefore = s.v('keyward_kms_requests_total', { ...unwrap, result: 'ok' }) ?? 0;
  const timedBefore = s.v('keyward_kms_request_duration_seconds_count', unwrap) ?? 0;
  const resumed = await server.api('POST', `/api/v1/clusters/${id}:resume`);
  assert.equal(resumed.status, 200, resumed.text);
  s = await scrape();
  assert.equal(s.v('keyward_clusters', { state: 'paused' }), 0);
  assert.equal(s.v('keyward_clusters', { state: 'available' }), 1);
  assert.ok(s.v('keyward_kms_requests_total', { ...unwrap, result: 'ok' }) >= unwrapsBefore + 1, s.text);
  assert.ok(s.v('keyward_kms_request_duration_seconds_count', unwrap) >= timedBefore + 1);
  assert.equal(s.v('keyward_redis_connections', { cluster: id }), 0, 'served again');
});

test('promtool accepts the exposition', { skip: !haveCommand('promtool') && 'SKIPPED LOUDLY: promtool (Debian package prometheus) is not installed' }, async () => {
  const { text } = await scrape();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('from loopback the Authorization header is not consulted', async () => {
  const r = await fetch(`${server.url}/metrics`, { headers: { Authorization: 'Bearer not-a-token' } });
  assert.equal(r.status, 200);
});

test('through a proxy (a forwarded request) only an organization owner reads /metrics', async () => {
  const forwarded = { 'X-Forwarded-For': '203.0.113.9' };
  assert.equal((await fetch(`${server.url}/metrics`, { headers: forwarded })).status, 401, 'no token');
  const project = (await server.api('POST', '/api/v1/projects', { name: 'metrics-roles' })).json;
  const member = (await server.api('POST', `/api/v1/projects/${project.id}/members`, { name: 'mel', role: 'project_owner' })).json;
  const refused = await fetch(`${server.url}/metrics`, { headers: { ...forwarded, Authorization: `Bearer ${member.token}` } });
  assert.equal(refused.status, 403);
  assert.match(await refused.text(), /only an organization owner may read \/metrics/);
  const owner = await fetch(`${server.url}/metrics`, { headers: { ...forwarded, Authorization: `Bearer ${server.token}` } });
  assert.equal(owner.status, 200);
  assert.match(await owner.text(), /# TYPE keyward_clusters gauge/);
});
