// No byte a client writes exists in plaintext anywhere under the data directory: not after a
// flush and compaction, and not while it only lives in the write-ahead log.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Redis from 'ioredis';
import { Server, canaryHits, makeCanary, splitEndpoint, tempDir } from './harness.mjs';

const COUNT = 10000;

async function writeCanaries(cluster) {
  const { host, port } = splitEndpoint(cluster.endpoint);
  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true, maxRetriesPerRequest: 0 });
  await redis.connect();
  const canaries = Array.from({ length: COUNT }, makeCanary);
  for (let i = 0; i < COUNT; i += 500) {
    const p = redis.pipeline();
    for (let j = i; j < i + 500; j++) p.set(`user:${j}`, canaries[j]);
    const results = await p.exec();
    for (const [err, reply] of results) { assert.equal(err, null); assert.equal(reply, 'OK'); }
  }
  return { redis, canaries };
}

async function readBack(cluster, canaries) {
  const { host, port } = splitEndpoint(cluster.endpoint);
  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true, maxRetriesPerRequest: 0 });
  await redis.connect();
  for (let i = 0; i < COUNT; i += 1000) {
    const keys = Array.from({ length: 1000 }, (_, k) => `user:${i + k}`);
    const values = await redis.mget(...keys);
    assert.deepEqual(values, canaries.slice(i, i + 1000));
  }
  await redis.quit();
}

test('the scanner itself finds a plaintext canary (control)', () => {
  const dir = tempDir();
  const c = makeCanary();
  fs.writeFileSync(path.join(dir, 'plain.bin'), Buffer.concat([Buffer.alloc(100), Buffer.from(c)]));
  assert.deepEqual([canaryHits(dir, [c]).exact, canaryHits(dir, [c]).markers], [1, 1]);
});

test('canaries are never on disk in plaintext after flush, compaction and restart', async () => {
  const dir = tempDir();
  const server = await new Server(dir).start();
  try {
    const cluster = server.createCluster('canary');
    const { redis, canaries } = await writeCanaries(cluster);
    assert.equal(await redis.save(), 'OK');  // flush memtables + compact into SST files
    await redis.quit();
    await server.stop();
    await server.start();
    await readBack(cluster, canaries);
    await server.stop();
    const { markers, exact, found } = canaryHits(dir, canaries);
    assert.equal(exact, 0, `plaintext canaries on disk: ${found.join(', ')}`);
    assert.equal(markers, 0, `canary marker on disk: ${found.join(', ')}`);
  } finally {
    await server.stop('SIGKILL');
  }
});

test('canaries that only reached the write-ahead log are encrypted too (kill -9 before flush)', async () => {
  const dir = tempDir();
  const server = await new Server(dir).start();
  try {
    const cluster = server.createCluster('wal');
    const { redis, canaries } = await writeCanaries(cluster);
    redis.disconnect();
    const { signal } = await server.stop('SIGKILL');
    assert.equal(signal, 'SIGKILL');
    const { markers, exact, found } = canaryHits(dir, canaries);
    assert.equal(exact, 0, `plaintext canaries on disk: ${found.join(', ')}`);
    assert.equal(markers, 0, `canary marker on disk: ${found.join(', ')}`);
    await server.start();  // recovery replays the encrypted WAL
    await readBack(cluster, canaries);
  } finally {
    await server.stop('SIGKILL');
  }
});
