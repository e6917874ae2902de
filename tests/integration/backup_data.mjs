// What the backup suites write into a cluster and compare after a restore (shared by
// backup.test.mjs, backup_azure.test.mjs and backup_lifecycle.test.mjs).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import Redis from 'ioredis';
import { makeCanary, splitEndpoint } from './harness.mjs';

export async function connect(cluster) {
  const { host, port } = splitEndpoint(cluster.endpoint);
  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();  // else it reconnects forever and the test process never ends
    throw e;
  }
  return redis;
}

// Value sizes log-uniform in [10 B, 64 KiB]; each value holds a canary (when it fits) and random
// hex, so it neither compresses away nor hides in a repeated pattern.
export function makeValues(count) {
  const values = [];
  const canaries = [];
  for (let i = 0; i < count; i++) {
    const size = Math.round(10 * Math.pow(65536 / 10, Math.random()));
    let v = '';
    if (size >= 40) {
      const c = makeCanary();
      canaries.push(c);
      v = c;
    }
    v += crypto.randomBytes(Math.ceil((size - v.length) / 2)).toString('hex').slice(0, size - v.length);
    values.push(v);
  }
  return { values, canaries };
}

// values[i] as key k:i, pipelined.
export async function writeAll(redis, values) {
  for (let i = 0; i < values.length; i += 200) {
    const p = redis.pipeline();
    for (let j = i; j < Math.min(values.length, i + 200); j++) p.set(`k:${j}`, values[j]);
    for (const [err] of await p.exec()) assert.equal(err, null);
  }
}

// The exact number of keys, by a full SCAN (DBSIZE is RocksDB's estimate above ~10 000 keys:
// a count compared with it could pass by luck or fail by estimate).
export async function countKeys(redis) {
  const seen = new Set();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 5000);
    cursor = next;
    for (const k of keys) seen.add(k);
  } while (cursor !== '0');
  return seen.size;
}

// Every key k:i holds values[i], and there is no other key.
export async function compareAll(redis, values) {
  for (let i = 0; i < values.length; i += 200) {
    const keys = [];
    for (let j = i; j < Math.min(values.length, i + 200); j++) keys.push(`k:${j}`);
    const got = await redis.mget(...keys);
    for (let j = 0; j < got.length; j++) {
      if (got[j] !== values[i + j]) assert.fail(`key k:${i + j}: restored value differs (${got[j]?.length} vs ${values[i + j].length} bytes)`);
    }
  }
  assert.equal(await countKeys(redis), values.length, 'the restore holds other keys than the backup');
}

export function cliJson(server, args) {
  const r = server.cli([...args, '--output', 'json']);
  return { ...r, json: r.code === 0 ? JSON.parse(r.stdout) : null };
}
