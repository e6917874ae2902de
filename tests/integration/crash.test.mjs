// kill -9 during a write load, again and again: every acknowledged write survives every restart
// and the key dictionary always opens.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Redis from 'ioredis';
import { Server, sleep, splitEndpoint, tempDir } from './harness.mjs';

// Short by default so make test stays quick on a shared machine; KEYWARD_CRASH_ROUNDS=100 for a long run.
const ROUNDS = Number(process.env.KEYWARD_CRASH_ROUNDS || 8);

test(`${ROUNDS} kill -9 restarts during writes lose no acknowledged write`, async () => {
  const dir = tempDir();
  const server = await new Server(dir).start();
  const acked = new Map();
  try {
    const cluster = server.createCluster('crashy');
    for (let round = 0; round < ROUNDS; round++) {
      const { host, port } = splitEndpoint(cluster.endpoint);
      const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true,
        maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
      redis.on('error', () => {});
      await redis.connect();
      let stop = false;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const key = `r${round}:w${w}:${i}`;
          const value = `${key}:${'x'.repeat(i % 200)}`;
          try {
            if ((await redis.set(key, value)) === 'OK') acked.set(key, value);
            if (i % 50 === 0 && (await redis.incr(`counter:${round}`)) > 0) { /* exercise RMW */ }
          } catch { return; }  // the server died mid-request: that write was never acknowledged
        }
      });
      await sleep(100 + Math.floor(Math.random() * 300));
      await server.stop('SIGKILL');
      stop = true;
      await Promise.all(writers);
      redis.disconnect();
      await server.start();  // must come up: the dictionary and the store always open
      const listed = server.cli(['cluster', 'get', cluster.id, '--output', 'json']);
      assert.equal(JSON.parse(listed.stdout).state, 'available', server.output);
    }
    const { host, port } = splitEndpoint(cluster.endpoint);
    const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true });
    await redis.connect();
    const keys = [...acked.keys()];
    assert.ok(keys.length > ROUNDS * 10, `load too light: ${keys.length} writes`);
    for (let i = 0; i < keys.length; i += 1000) {
      const chunk = keys.slice(i, i + 1000);
      const values = await redis.mget(...chunk);
      chunk.forEach((k, j) => assert.equal(values[j], acked.get(k), `lost acknowledged write ${k}`));
    }
    await redis.quit();
  } finally {
    await server.stop('SIGKILL');
  }
});
