// Nothing of a cluster's plaintext stays in the server's memory once the cluster is closed: write
// random canary values, read them back (so they pass through the block cache and the reply
// buffers), then read everything a core dump of `keyward serve` would hold and search it.
// Control: while the cluster is open the dump holds the canaries (the search works). After a
// pause: zero copies. After the key health monitor cuts the cluster (key disabled in the KMS):
// zero copies again, and everything comes back once the key is enabled.
// The cluster's keys are checked the same way, below the server, in
// src/storage/cluster_store_memory_test.cc (the test there can read them; no API ever shows them).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Redis from 'ioredis';
import { FakeKms, fakeServer, makeCanary, sleep, splitEndpoint, tempDir } from './harness.mjs';

const CANARIES = 200;
const FILLER = 3000;
const INTERVAL_S = 1;

// Reads the memory a core dump of the process would hold, straight from /proc/PID/mem: every
// readable mapping except those marked do-not-dump (the kernel's core writer skips them too).
// gcore (gdb) was the first choice; on the sanitizer build it wrote over 3.6 GB in 3 minutes
// (it dumps ASan's shadow memory) and did not finish. Each hit of the common marker is looked up
// in the set of canaries; chunks overlap so a value across a chunk edge is still seen.
function canariesInMemory(pid, canaries) {
  const maps = [];
  let cur = null;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'latin1').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      cur = { start: parseInt(m[1], 16), end: parseInt(m[2], 16), perms: m[3], path: m[4], flags: '' };
      maps.push(cur);
    } else if (cur && line.startsWith('VmFlags:')) {
      cur.flags = ` ${line.slice(8).trim()} `;
    }
  }
  const wanted = new Set(canaries);
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  const CHUNK = 16 << 20;
  const OVERLAP = 40;
  const buf = Buffer.alloc(CHUNK + OVERLAP);
  let hits = 0;
  let bytes = 0;
  const where = [];
  try {
    for (const m of maps) {
      if (m.perms[0] !== 'r' || m.flags.includes(' dd ') || /\[(vvar|vsyscall)\]/.test(m.path)) continue;
      for (let at = m.start; at < m.end; at += CHUNK) {
        const len = Math.min(CHUNK + OVERLAP, m.end - at);
        let n;
        try { n = fs.readSync(fd, buf, 0, len, at); } catch { break; }  // unmapped since smaps was read
        bytes += Math.min(n, CHUNK);
        const view = buf.subarray(0, n);
        for (let i = view.indexOf('KWCANARY'); i >= 0 && i < CHUNK; i = view.indexOf('KWCANARY', i + 8)) {
          if (wanted.has(view.toString('latin1', i, i + 40))) {
            hits++;
            if (where.length < 5) where.push(`0x${(at + i).toString(16)} in ${m.path || '[anonymous]'} (${m.perms})`);
          }
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return { hits, bytes, where };
}

async function client(cluster) {
  const redis = new Redis({ ...splitEndpoint(cluster.endpoint), password: cluster.password, lazyConnect: true,
    maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  await redis.connect();
  return redis;
}

async function waitForState(server, id, want, ms) {
  const deadline = Date.now() + ms;
  let c;
  while (Date.now() < deadline) {
    c = (await server.api('GET', `/api/v1/clusters/${id}`)).json;
    if (c.state === want) return c;
    await sleep(200);
  }
  assert.fail(`cluster ${id} is ${c?.state}, not ${want}, after ${ms} ms`);
}

test('no copy of a closed cluster\'s values in the server\'s memory', async () => {
  const dir = tempDir('kw-mem-');
  const fake = new FakeKms(dir);
  // --allow-core-dumps: the search reads what a debugging dump would hold, key buffers included.
  const server = await fakeServer(dir, fake, ['--key-check-interval', String(INTERVAL_S), '--allow-core-dumps']).start();
  try {
    const project = (await server.api('POST', '/api/v1/projects', { name: 'memory', cmek_enabled: true })).json;
    const key = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys`,
      { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-mem', key_name_prefix: 'm' } })).json;
    fake.createKey(key.key_name, { granted: true });
    assert.equal((await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys/${key.id}:test`)).json.state, 'active');
    const created = await server.api('POST', `/api/v1/projects/${project.id}/clusters`,
      { name: 'mem', cloud_provider: 'azure', region: 'eastus', tier: 'dedicated' });
    assert.equal(created.status, 201, created.text);
    const cluster = created.json;

    const canaries = Array.from({ length: CANARIES }, makeCanary);
    let redis = await client(cluster);
    const p = redis.pipeline();
    canaries.forEach((c, i) => p.set(`canary:${i}`, c));
    for (let i = 0; i < FILLER; i++) p.set(`filler:${i}`, 'f'.repeat(100));
    for (const [err] of await p.exec()) assert.equal(err, null);
    assert.equal(await redis.save(), 'OK');  // into SST files: reads below go through the block cache
    assert.deepEqual(await redis.mget(...canaries.map((_, i) => `canary:${i}`)), canaries);
    await redis.quit();

    const open = canariesInMemory(server.proc.pid, canaries);
    console.log(`open cluster: ${open.hits} canary copies in a ${(open.bytes / 1048576).toFixed(0)} MiB dump`);
    assert.ok(open.hits >= 1, 'control: the dump of a server with the cluster open must hold canaries');

    const paused = await server.api('POST', `/api/v1/clusters/${cluster.id}:pause`);
    assert.equal(paused.status, 200, paused.text);
    const afterPause = canariesInMemory(server.proc.pid, canaries);
    assert.equal(afterPause.hits, 0, `canary values left in memory after pause: ${afterPause.where.join(', ')}`);

    const resumed = await server.api('POST', `/api/v1/clusters/${cluster.id}:resume`);
    assert.equal(resumed.status, 200, resumed.text);
    redis = await client(cluster);
    assert.deepEqual(await redis.mget(...canaries.map((_, i) => `canary:${i}`)), canaries);
    await redis.quit();

    fake.update(key.key_name, { enabled: false });
    await waitForState(server, cluster.id, 'inaccessible', (INTERVAL_S + 10) * 1000);
    const afterCut = canariesInMemory(server.proc.pid, canaries);
    assert.equal(afterCut.hits, 0, `canary values left in memory after the monitor cut the cluster: ${afterCut.where.join(', ')}`);

    fake.update(key.key_name, { enabled: true });
    await waitForState(server, cluster.id, 'available', (INTERVAL_S + 30) * 1000);
    redis = await client(cluster);
    assert.deepEqual(await redis.mget(...canaries.map((_, i) => `canary:${i}`)), canaries);
    await redis.quit();
  } catch (e) {
    console.log(`keyward serve output (tail):\n${server.output.slice(-6000)}`);
    throw e;
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
