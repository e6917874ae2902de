// A flipped byte in every kind of file a cluster has (SST, WAL, MANIFEST, CURRENT, OPTIONS,
// IDENTITY, keys.dict): never a crash, never silently wrong data. Each cluster ends available
// with every value right (or a read error, never a wrong value), or inaccessible/degraded with a
// storage reason (never a key reason). The outcome per kind is printed: the README's table
// ("what survives what") comes from it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Redis from 'ioredis';
import { Server, sleep, splitEndpoint, tempDir } from './harness.mjs';

const HEADER = 4096;
const KINDS = {
  sst: (n) => n.endsWith('.sst'),
  wal: (n) => n.endsWith('.log'),
  manifest: (n) => n.startsWith('MANIFEST-'),
  current: (n) => n === 'CURRENT',
  options: (n) => n.startsWith('OPTIONS-'),
  identity: (n) => n === 'IDENTITY',
  'keys.dict': (n) => n === 'keys.dict',
};

async function connect(cluster, endpoint) {
  const { host, port } = splitEndpoint(endpoint);
  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true,
    maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false });
  redis.on('error', () => {});
  await redis.connect();
  return redis;
}

test('a flipped byte in each kind of cluster file: a clear state and reason, never a crash or a wrong value', async () => {
  const dir = tempDir();
  const server = await new Server(dir, ['--storage-check-interval', '1']).start();
  const rows = [];
  try {
    const clusters = {};
    for (const kind of Object.keys(KINDS)) {
      const cluster = server.createCluster(`dmg-${kind.replace('.', '-')}`);
      clusters[kind] = cluster;
      const redis = await connect(cluster, cluster.endpoint);
      for (let i = 0; i < 300; i++) await redis.set(`s${i}`, `S${i}-${'s'.repeat(300)}`);
      assert.equal(await redis.call('SAVE'), 'OK');  // an SST, a fresh MANIFEST
      for (let i = 0; i < 300; i++) await redis.set(`w${i}`, `W${i}-${'w'.repeat(300)}`);  // the WAL
      await redis.quit();
    }
    await server.stop();
    for (const [kind, match] of Object.entries(KINDS)) {
      const d = path.join(dir, 'clusters', clusters[kind].id);
      const names = fs.readdirSync(d).filter(match).filter((n) => fs.statSync(path.join(d, n)).size > 0).sort();
      assert.ok(names.length > 0, `${kind}: no file in ${fs.readdirSync(d).join(' ')}`);
      const file = path.join(d, names[names.length - 1]);
      const size = fs.statSync(file).size;
      const start = kind === 'keys.dict' ? 0 : HEADER;
      const offset = size > start ? start + Math.floor((size - start) / 2) : Math.floor(size / 2);
      const fd = fs.openSync(file, 'r+');
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, offset);
      b[0] ^= 0x01;
      fs.writeSync(fd, b, 0, 1, offset);
      fs.closeSync(fd);
    }
    await server.start();  // must come up whatever is damaged
    for (const kind of Object.keys(KINDS)) {
      const cluster = clusters[kind];
      let c = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json;
      let right = 0; let errors = 0; let wrong = 0; let missing = 0; let write = '-';
      if (c.state === 'available' || c.state === 'degraded') {
        const redis = await connect(cluster, c.endpoint);
        for (const [p, n, pad] of [['s', 300, 's'], ['w', 300, 'w']]) {
          for (let i = 0; i < n; i++) {
            try {
              const v = await redis.get(`${p}${i}`);
              if (v === null) missing++;
              else if (v === `${p.toUpperCase()}${i}-${pad.repeat(300)}`) right++;
              else wrong++;
            } catch { errors++; }
          }
        }
        try { write = (await redis.set('probe', '1')) === 'OK' ? 'ok' : 'refused'; } catch (e) { write = `refused`; }
        try { await redis.call('SAVE'); } catch { /* a compaction over damage: degraded */ }
        await redis.quit();
        await sleep(1500);  // one storage check
        c = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json;
      }
      const row = { kind, state: c.state, cause: c.state_cause, right, missing, errors, wrong, write,
        message: c.state_message.slice(0, 400) };
      rows.push(row);
      assert.equal(wrong, 0, `${kind}: wrong values returned`);
      assert.equal(missing, 0, `${kind}: values silently missing`);
      if (c.state !== 'available') {
        assert.ok(['inaccessible', 'degraded'].includes(c.state), `${kind}: ${c.state}`);
        assert.ok(['corruption', 'storage'].includes(c.state_cause), `${kind}: cause ${c.state_cause}: ${c.state_message}`);
        assert.doesNotMatch(c.state_message, /fix the key/);
      }
      if (c.state_cause === 'corruption') {
        // Repair: back to a consistent point, saying what was dropped; the values kept are right.
        const r = server.cli(['cluster', 'repair', cluster.id, '--accept-data-loss', '--output', 'json']);
        row.repair = r.code === 0 ? JSON.parse(r.stdout).repair.summary : r.stderr.trim().slice(0, 300);
        if (kind === 'keys.dict') {
          assert.notEqual(r.code, 0);
          assert.match(r.stderr, /restore keys\.dict from a backup/);
          continue;
        }
        assert.equal(r.code, 0, r.stderr);
        c = JSON.parse(r.stdout);
        assert.equal(c.state, 'available');
        const redis = await connect(cluster, c.endpoint);
        let kept = 0;
        for (const [p, n, pad] of [['s', 300, 's'], ['w', 300, 'w']]) {
          for (let i = 0; i < n; i++) {
            const v = await redis.get(`${p}${i}`);
            if (v !== null) {
              assert.equal(v, `${p.toUpperCase()}${i}-${pad.repeat(300)}`);
              kept++;
            }
          }
        }
        row.kept_after_repair = kept;
        await redis.quit();
      }
    }
    const health = await server.api('GET', '/healthz', undefined, null);
    assert.equal(health.status, 200);
  } finally {
    console.log(JSON.stringify(rows, null, 1));
    await server.stop('SIGKILL');
  }
});
