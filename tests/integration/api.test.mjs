// The minimal control path: REST + CLI, authentication, bad input, deletion that shreds, and a
// clean SIGTERM shutdown.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Redis from 'ioredis';
import { Server, splitEndpoint, tempDir } from './harness.mjs';

let server;
let dir;
before(async () => { dir = tempDir(); server = await new Server(dir).start(); });
after(async () => { await server.stop('SIGKILL'); });

test('the owner token, the escrow key and the metadata (with its WAL) are 0600 files', () => {
  const files = ['owner.token', 'escrow.key', 'metadata.db', 'metadata.db-wal', 'service-identity.json'];
  for (const f of files) {
    assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
  }
});

test('every API route needs a valid token', async () => {
  for (const token of [null, 'kw_wrong', '']) {
    const r = await server.api('GET', '/api/v1/clusters', undefined, token);
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'unauthenticated');
  }
  const cli = server.cli(['cluster', 'list'], { KEYWARD_TOKEN: 'kw_wrong' });
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /invalid or expired token \(HTTP 401\)/);
});

test('bad input gets a clear 4xx and writes nothing', async () => {
  const cases = [
    ['{not json', 400, /JSON object/],
    ['[]', 400, /JSON object/],
    [{ name: 42 }, 400, /field 'name' must be a string/],
    [{}, 400, /'name' is required/],
    [{ name: 'ok', color: 'x' }, 400, /unknown field 'color'/],
    [{ name: 'ok', tier: 'x' }, 400, /tier must be dedicated or starter/],
    [{ name: '../../etc' }, 400, /a-z, 0-9 and '-'/],
    [{ name: 'UPPER' }, 400, /a-z, 0-9/],
    [{ name: 'x'.repeat(64) }, 400, /1-63 characters/],
    [{ name: 'x'.repeat(2 << 20) }, 413, /too large/],
  ];
  for (const [body, status, message] of cases) {
    const r = await server.api('POST', '/api/v1/clusters', body);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 40)} -> ${r.text.slice(0, 200)}`);
    assert.match(r.json.error.message, message);
  }
  const list = await server.api('GET', '/api/v1/clusters');
  assert.deepEqual(list.json.items, []);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'clusters')), []);
  const missing = await server.api('GET', '/api/v1/clusters/c-nope');
  assert.equal(missing.status, 404);
  assert.match(missing.json.error.message, /does not exist/);
  const noRoute = await server.api('GET', '/api/v1/nothing');
  assert.equal(noRoute.status, 404);
});

test('CLI create/list/get/delete; a name is unique; delete shreds keys and files', async () => {
  const created = server.createCluster('orders');
  assert.match(created.id, /^c-[0-9a-f]{16}$/);
  assert.equal(created.state, 'available');
  assert.match(created.endpoint, /^127\.0\.0\.1:\d+$/);
  assert.match(created.password, /^[0-9a-f]{32}$/);
  const dup = server.cli(['cluster', 'create', '--name', 'orders']);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /a cluster named 'orders' already exists in this project \(HTTP 409\)/);

  const list = JSON.parse(server.cli(['cluster', 'list', '--output', 'json']).stdout);
  assert.equal(list.length, 1);
  assert.equal(list[0].password, undefined, 'the password is shown once, at creation');
  const table = server.cli(['cluster', 'list']).stdout;
  assert.match(table, /orders\s+aws\/us-east-1\s+dedicated\s+available\s+127\.0\.0\.1:/);

  const { host, port } = splitEndpoint(created.endpoint);
  const redis = new Redis({ host, port, password: created.password, lazyConnect: true });
  await redis.connect();
  await redis.set('k', 'v');
  redis.disconnect();
  const clusterDir = path.join(dir, 'clusters', created.id);
  assert.ok(fs.existsSync(path.join(clusterDir, 'keys.dict')));

  const del = server.cli(['cluster', 'delete', created.id, '--yes', '--output', 'json']);
  assert.equal(del.code, 0, del.stderr);
  assert.equal(JSON.parse(del.stdout).state, 'deleted');
  assert.equal(fs.existsSync(clusterDir), false);
  const after = JSON.parse(server.cli(['cluster', 'get', created.id, '--output', 'json']).stdout);
  assert.equal(after.state, 'deleted');
  assert.equal(after.endpoint, '');
  const gone = new Redis({ host, port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  gone.on('error', () => {});
  await assert.rejects(gone.connect());
});

test('SIGTERM shuts down cleanly and data is there after restart', async () => {
  const c = server.createCluster('durable');
  const { host, port } = splitEndpoint(c.endpoint);
  let redis = new Redis({ host, port, password: c.password, lazyConnect: true });
  await redis.connect();
  await redis.set('persisted', 'yes');
  redis.disconnect();
  const { code } = await server.stop('SIGTERM');
  assert.equal(code, 0);
  assert.match(server.output, /stopped cleanly/);
  await server.start();
  redis = new Redis({ host, port, password: c.password, lazyConnect: true });
  await redis.connect();
  assert.equal(await redis.get('persisted'), 'yes');
  redis.disconnect();
});

test('a wrong escrow key file is refused with a clear message at start', async () => {
  const other = tempDir();
  const keyFile = path.join(other, 'other.key');
  fs.writeFileSync(keyFile, Buffer.alloc(32, 7), { mode: 0o600 });
  await server.stop('SIGTERM');
  const wrong = new Server(dir, ['--escrow-key-file', keyFile]);
  await wrong.start();
  try {
    assert.match(wrong.output, /escrow key .* --escrow-key-file pointing at the original/);
    const list = JSON.parse(wrong.cli(['cluster', 'list', '--output', 'json']).stdout);
    assert.ok(list.filter((c) => c.state !== 'deleted').every((c) => c.state === 'inaccessible' && /--escrow-key-file pointing at the original/.test(c.state_message)), JSON.stringify(list));
  } finally {
    await wrong.stop('SIGTERM');
  }
  fs.chmodSync(keyFile, 0o644);
  const loose = new Server(dir, ['--escrow-key-file', keyFile]);
  await assert.rejects(loose.start(), /chmod 600/);
  await server.start();
});

test('serve --config takes flags from a JSON file; the command line wins', async () => {
  const d = tempDir();
  const cfg = path.join(d, 'keyward.json');
  fs.writeFileSync(cfg, JSON.stringify({ 'max-bulk-bytes': 2048, 'data-key-rotation-days': 3 }));
  const s = new Server(path.join(d, 'data'), ['--config', cfg]);
  await s.start();
  try {
    const c = s.createCluster('configured');
    const { host, port } = splitEndpoint(c.endpoint);
    const redis = new Redis({ host, port, password: c.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    await redis.connect();
    assert.equal(await redis.set('small', 'x'.repeat(1000)), 'OK');
    await assert.rejects(redis.set('big', 'x'.repeat(5000)), /Protocol error: invalid bulk length/);
    redis.disconnect();
  } finally {
    await s.stop('SIGKILL');
  }
  fs.writeFileSync(cfg, '[1]');
  await assert.rejects(new Server(path.join(d, 'data'), ['--config', cfg]).start(), /must hold a JSON object of flags/);
});
