// Durability per cluster (README "Durability"): the server's --durability is the default, a
// cluster may choose its own at creation, the choice is stored, shown and audited, and anything
// else is refused naming the three values. What each level survives is shown by power_loss.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import Redis from 'ioredis';
import { Server, keywardBin, splitEndpoint, tempDir } from './harness.mjs';

async function setGet(cluster) {
  const { host, port } = splitEndpoint(cluster.endpoint);
  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true,
    maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    assert.equal(await redis.set('k', 'v'), 'OK');
    assert.equal(await redis.get('k'), 'v');
  } finally {
    redis.disconnect();
  }
}

test('clusters get the server default or their own durability; it is stored, shown and audited; bad values are refused', async () => {
  const dir = tempDir();
  let server = await new Server(dir).start();
  try {
    assert.match(server.output, /default durability always/);
    const plain = server.createCluster('plain');
    assert.equal(plain.durability, 'always', 'the server default is always');
    const r = server.cli(['cluster', 'create', '--name', 'everysec', '--durability', 'everysec', '--output', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const everysec = JSON.parse(r.stdout);
    assert.equal(everysec.durability, 'everysec');
    const none = await server.api('POST', '/api/v1/clusters', { name: 'none', durability: 'none' });
    assert.equal(none.status, 201, none.text);
    assert.equal(none.json.durability, 'none');
    for (const c of [plain, everysec, none.json]) await setGet(c);

    for (const bad of ['ALWAYS', 'fsync', '']) {
      const refused = await server.api('POST', '/api/v1/clusters', { name: `bad-${bad.length}`, durability: bad });
      assert.equal(refused.status, 400, refused.text);
      assert.match(refused.json.error.message, /durability must be always .*everysec .*or none .*not '/);
    }
    const wrongType = await server.api('POST', '/api/v1/clusters', { name: 'bad-type', durability: 1 });
    assert.equal(wrongType.status, 400);
    assert.match(wrongType.text, /durability/);
    const cliBad = server.cli(['cluster', 'create', '--name', 'bad-cli', '--durability', 'sometimes']);
    assert.notEqual(cliBad.code, 0);
    assert.match(cliBad.stderr, /always.*everysec.*none/);
    const listed = (await server.api('GET', '/api/v1/clusters')).json.items;
    assert.deepEqual(listed.map((c) => [c.name, c.durability]).sort(),
      [['everysec', 'everysec'], ['none', 'none'], ['plain', 'always']], 'refused creations left nothing behind');

    const table = server.cli(['cluster', 'list']);
    assert.match(table.stdout, /DURABILITY/);
    assert.match(table.stdout, new RegExp(`${everysec.id}\\s.*\\severysec\\s`));
    const got = (await server.api('GET', `/api/v1/clusters/${none.json.id}`)).json;
    assert.equal(got.durability, 'none');
    const audit = (await server.api('GET', `/api/v1/projects/${everysec.project_id}/audit-events`)).json.items;
    const created = audit.find((e) => e.action === 'cluster.create' && e.target === everysec.id);
    assert.match(created.message, /durability everysec/);

    // Another default at the next start: new clusters take it, existing ones keep theirs.
    await server.stop();
    server = await new Server(dir, ['--durability', 'none']).start();
    assert.match(server.output, /default durability none/);
    const later = server.createCluster('later');
    assert.equal(later.durability, 'none');
    const kept = (await server.api('GET', `/api/v1/clusters/${plain.id}`)).json;
    assert.equal(kept.durability, 'always');
    assert.equal(kept.state, 'available');
    await setGet({ ...kept, password: plain.password });
  } finally {
    await server.stop();
  }
});

test('serve refuses an unknown --durability, naming the choices', () => {
  const r = spawnSync(keywardBin, ['serve', '--data-dir', tempDir(), '--listen', '127.0.0.1:0', '--durability', 'sometimes'],
    { encoding: 'utf8', timeout: 60000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--durability must be always, everysec or none, not 'sometimes'/);
});

// everysec and none give up only what the kernel had not written to disk: a process crash right
// after the acknowledgements loses nothing (power loss: see power_loss.test.mjs).
test('under everysec and none a kill -9 right after the acknowledgements loses nothing', async () => {
  const dir = tempDir();
  const server = await new Server(dir, ['--durability', 'none']).start();
  try {
    const none = server.createCluster('none');
    const r = server.cli(['cluster', 'create', '--name', 'everysec', '--durability', 'everysec', '--output', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const clusters = [none, JSON.parse(r.stdout)];
    assert.deepEqual(clusters.map((c) => c.durability), ['none', 'everysec']);
    for (const c of clusters) {
      const { host, port } = splitEndpoint(c.endpoint);
      const redis = new Redis({ host, port, password: c.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => {});
      await redis.connect();
      for (let i = 0; i < 2000; i += 200) {
        const p = redis.pipeline();
        for (let j = i; j < i + 200; j++) p.set(`k${j}`, `v${j}`);
        for (const [err, ok] of await p.exec()) assert.equal(err ?? ok, 'OK');
      }
      redis.disconnect();
    }
    await server.stop('SIGKILL');
    await server.start();
    for (const c of clusters) {
      const { host, port } = splitEndpoint(c.endpoint);
      const redis = new Redis({ host, port, password: c.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => {});
      await redis.connect();
      const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
      const values = await redis.mget(...keys);
      assert.deepEqual(values, keys.map((_, i) => `v${i}`), `${c.durability}: acknowledged writes lost to kill -9`);
      redis.disconnect();
    }
  } finally {
    await server.stop('SIGKILL');
  }
});
