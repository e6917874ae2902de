// kill -9 at random points while clusters are being created, KEYWARD_CRASH_ROUNDS times (8 by default): afterwards every cluster
// is either fully usable or failed with a clear message and no files — never half-made.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Redis from 'ioredis';
import { FakeKms, fakeServer, sleep, splitEndpoint, tempDir } from './harness.mjs';

// Short by default so make test stays quick on a shared machine; KEYWARD_CRASH_ROUNDS=100 for a long run.
const ROUNDS = Number(process.env.KEYWARD_CRASH_ROUNDS || 8);

test(`${ROUNDS} kill -9 during cluster creation leave no half-made cluster`, async () => {
  const dir = tempDir();
  const fake = new FakeKms(dir);
  const server = await fakeServer(dir, fake).start();
  const passwords = new Map();
  try {
    const project = (await server.api('POST', '/api/v1/projects', { name: 'crashy', cmek_enabled: true })).json;
    const key = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys`,
      { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-crash', key_name_prefix: 'c' } })).json;
    fake.createKey(key.key_name, { granted: true });
    assert.equal((await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys/${key.id}:test`)).json.state, 'active');
    // Crash points spread over the time creations take on this machine (sanitizer builds are slower).
    const t0 = Date.now();
    const probe = await server.api('POST', `/api/v1/projects/${project.id}/clusters`,
      { name: 'probe', cloud_provider: 'azure', region: 'eastus', tier: 'dedicated' });
    assert.equal(probe.status, 201);
    passwords.set(probe.json.id, probe.json.password);
    const window = Math.max(60, 4 * (Date.now() - t0));
    let n = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const creates = Array.from({ length: 3 }, () => {
        const name = `c${n++}`;
        return server.api('POST', `/api/v1/projects/${project.id}/clusters`,
          { name, cloud_provider: 'azure', region: 'eastus', tier: 'dedicated' })
          .then((r) => { if (r.status === 201) passwords.set(r.json.id, r.json.password); })
          .catch(() => {});
      });
      await sleep(Math.floor(Math.random() * window));
      await server.stop('SIGKILL');
      await Promise.all(creates);
      await server.start();
      const clusters = (await server.api('GET', `/api/v1/projects/${project.id}/clusters?page_size=500`)).json.items;
      for (const c of clusters) {
        const files = path.join(dir, 'clusters', c.id);
        assert.ok(['available', 'failed'].includes(c.state), `cluster ${c.id} is ${c.state}`);
        if (c.state === 'failed') {
          assert.match(c.state_message, /interrupted by a server restart; delete this cluster and create it again/);
          assert.equal(fs.existsSync(files), false, `failed cluster ${c.id} left files`);
        } else {
          assert.ok(fs.existsSync(path.join(files, 'keys.dict')), `available cluster ${c.id} has no key dictionary`);
        }
      }
    }
    // Every available cluster whose password was handed out really works.
    const clusters = (await server.api('GET', `/api/v1/projects/${project.id}/clusters?page_size=500`)).json.items;
    let used = 0;
    for (const c of clusters.filter((x) => x.state === 'available' && passwords.has(x.id))) {
      const redis = new Redis({ ...splitEndpoint(c.endpoint), password: passwords.get(c.id), lazyConnect: true });
      await redis.connect();
      assert.equal(await redis.set('k', c.id), 'OK');
      assert.equal(await redis.get('k'), c.id);
      redis.disconnect();
      used++;
    }
    assert.ok(used > 0, 'no cluster could be used after the crashes');
    const failed = clusters.filter((x) => x.state === 'failed');
    for (const c of failed) assert.equal((await server.api('DELETE', `/api/v1/clusters/${c.id}`)).json.state, 'deleted');
  } finally {
    await server.stop('SIGKILL');
  }
});
