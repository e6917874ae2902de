// A customer retires keys and knows when they are retired: `:reencrypt` rewrites every file of a
// running cluster under a new data key (progress in the cluster resource; afterwards no file
// header names an older data key), `:rotate-dictionary-key` replaces the key that seals the
// data-key dictionary. Clients keep their data through both, and across a restart.
// That the old dictionary key no longer unwraps anything is shown below the server, where the
// key can be seen (src/storage/key_dictionary_test.cc).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Redis from 'ioredis';
import { FakeKms, allFiles, fakeServer, makeCanary, sleep, splitEndpoint, tempDir } from './harness.mjs';

const COUNT = 2000;

// Data-key id of every encrypted file of the cluster (header: "KWENCF01", u32 version, u32 id).
function dataKeyIdsOnDisk(dir) {
  const ids = new Map();
  for (const f of allFiles(dir)) {
    const fd = fs.openSync(f, 'r');
    const head = Buffer.alloc(16);
    const n = fs.readSync(fd, head, 0, 16, 0);
    fs.closeSync(fd);
    if (n < 16 || head.toString('latin1', 0, 8) !== 'KWENCF01') continue;
    ids.set(path.basename(f), head.readUInt32LE(12));
  }
  return ids;
}

async function readBack(cluster, canaries) {
  const redis = new Redis({ ...splitEndpoint(cluster.endpoint), password: cluster.password, lazyConnect: true, maxRetriesPerRequest: 0 });
  await redis.connect();
  for (let i = 0; i < COUNT; i += 500) {
    const keys = Array.from({ length: 500 }, (_, k) => `k:${i + k}`);
    assert.deepEqual(await redis.mget(...keys), canaries.slice(i, i + 500));
  }
  await redis.quit();
}

test('re-encryption leaves no file under an older data key; a new dictionary key keeps every value', async () => {
  const dir = tempDir('kw-rot-');
  const fake = new FakeKms(dir);
  const server = await fakeServer(dir, fake).start();
  const clients = [];
  let writing = false;
  try {
    const project = (await server.api('POST', '/api/v1/projects', { name: 'rotation', cmek_enabled: true })).json;
    const key = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys`,
      { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-rot', key_name_prefix: 'r' } })).json;
    fake.createKey(key.key_name, { granted: true });
    assert.equal((await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys/${key.id}:test`)).json.state, 'active');
    const created = await server.api('POST', `/api/v1/projects/${project.id}/clusters`,
      { name: 'rot', cloud_provider: 'azure', region: 'eastus', tier: 'dedicated' });
    assert.equal(created.status, 201, created.text);
    const cluster = created.json;
    const files = path.join(dir, 'clusters', cluster.id);

    const canaries = Array.from({ length: COUNT }, makeCanary);
    const redis = new Redis({ ...splitEndpoint(cluster.endpoint), password: cluster.password, lazyConnect: true, maxRetriesPerRequest: 0 });
    clients.push(redis);
    await redis.connect();
    const p = redis.pipeline();
    canaries.forEach((c, i) => p.set(`k:${i}`, c));
    for (const [err] of await p.exec()) assert.equal(err, null);
    assert.equal(await redis.save(), 'OK');
    const before = dataKeyIdsOnDisk(files);
    assert.ok(before.size >= 3, `encrypted files before: ${[...before.keys()]}`);
    const oldIds = new Set(before.values());

    // Writes keep landing while the files are rewritten.
    writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) { await redis.set(`during:${written}`, String(written)); written++; }
    })();
    writer.catch(() => {});  // awaited below; a failure there is the test's failure
    const started = await server.api('POST', `/api/v1/clusters/${cluster.id}:reencrypt`);
    assert.equal(started.status, 202, started.text);  // accepted: it runs in the background
    assert.equal(started.json.encryption.reencrypt_progress.state, 'running');
    const again = await server.api('POST', `/api/v1/clusters/${cluster.id}:reencrypt`);
    assert.ok(again.status === 409 || again.status === 202, again.text);  // 409 while the first still runs
    let c;
    const deadline = Date.now() + 300000;
    do {
      await sleep(250);
      c = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json;
    } while (c.encryption.reencrypt_progress?.state === 'running' && Date.now() < deadline);
    writing = false;
    await writer;
    assert.equal(c.encryption.reencrypt_progress.state, 'completed', JSON.stringify(c.encryption));
    const after = dataKeyIdsOnDisk(files);
    const stale = [...after].filter(([, id]) => oldIds.has(id));
    assert.deepEqual(stale, [], 'files still under a data key from before the re-encryption');
    const inUse = [...new Set(after.values())];
    assert.equal(inUse.length, 1, `one data key in use after: ${inUse}`);
    assert.deepEqual(c.encryption.data_key_ids_in_use, inUse);
    assert.ok(written > 0);
    for (let i = 0; i < written; i += 1000) {
      const n = Math.min(1000, written - i);
      const got = await redis.mget(...Array.from({ length: n }, (_, k) => `during:${i + k}`));
      assert.deepEqual(got, Array.from({ length: n }, (_, k) => String(i + k)));
    }
    await redis.quit();
    await readBack(cluster, canaries);

    const dictBefore = c.encryption.dictionary_key_id;
    const rotated = await server.api('POST', `/api/v1/clusters/${cluster.id}:rotate-dictionary-key`);
    assert.equal(rotated.status, 200, rotated.text);
    assert.notEqual(rotated.json.encryption.dictionary_key_id, dictBefore);
    await readBack(cluster, canaries);
    await server.stop();
    await server.start();
    const reopened = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json;
    assert.equal(reopened.state, 'available');
    assert.equal(reopened.encryption.dictionary_key_id, rotated.json.encryption.dictionary_key_id);
    await readBack(cluster, canaries);

    // kill -9 while a re-encryption may still run: after the restart it is not left "running"
    // (that would refuse every later one), and a new one is accepted.
    const third = await server.api('POST', `/api/v1/clusters/${cluster.id}:reencrypt`);
    assert.equal(third.status, 202, third.text);
    await server.stop('SIGKILL');
    await server.start();
    const progress = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json.encryption.reencrypt_progress;
    assert.notEqual(progress.state, 'running', JSON.stringify(progress));
    if (progress.state === 'failed') assert.match(progress.error, /interrupted by a server restart/);
    const fourth = await server.api('POST', `/api/v1/clusters/${cluster.id}:reencrypt`);
    assert.equal(fourth.status, 202, fourth.text);
    await readBack(cluster, canaries);
  } catch (e) {
    writing = false;
    console.log(`keyward serve output (tail):\n${server.output.slice(-6000)}`);
    throw e;
  } finally {
    for (const c of clients) c.disconnect();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
