// Dual-region backup copies (issue 9): with --backup-secondary-dir, every backup of a cluster
// whose policy has dual_region is copied there too (byte-identical objects, no plaintext), the
// backup shows the copy's state, and deleting the backup deletes the copy. Never in a CMEK
// project: the policy is refused up front, and a dual_region policy that got stored anyway (put
// into the metadata behind the API's back, as one stored before the rule would be) is refused
// again at copy time — fail closed, nothing copied. A backup whose primary objects are damaged
// or gone restores from its copy (and on request, --from-copy); a damaged copy is refused too.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Redis from 'ioredis';
import { cliJson, compareAll, connect, makeValues, writeAll } from './backup_data.mjs';
import { FakeKms, Server, allFiles, canaryHits, fakeServer, haveCommand, makeCanary, sleep, splitEndpoint, tempDir } from './harness.mjs';

const POLICY = { schedule: 'daily', retention_days: 7, dual_region: { enabled: true, secondary_region: 'westus' } };

async function fill(cluster, count) {
  const { host, port } = splitEndpoint(cluster.endpoint);
  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true, maxRetriesPerRequest: 0 });
  await redis.connect();
  const canaries = [];
  const p = redis.pipeline();
  for (let i = 0; i < count; i++) {
    const c = makeCanary();
    canaries.push(c);
    p.set(`k:${i}`, c + 'x'.repeat(i % 3000));
  }
  await p.exec();
  await redis.quit();
  return canaries;
}

// Until the backup has finished and its copy (when one is due) has too.
async function settled(server, id) {
  for (let i = 0; i < 1500; i++) {
    const r = await server.api('GET', `/api/v1/backups/${id}`);
    if (r.json?.state !== 'running' && r.json?.copy?.state !== 'copying') return r.json;
    await sleep(20);
  }
  assert.fail(`backup ${id} did not settle`);
}

test('dual-region copies: made for a dual_region policy, shown on the backup, deleted with it; refused in CMEK projects even when the policy got stored', async (t) => {
  if (!haveCommand('sqlite3')) {
    t.skip('SKIPPED LOUDLY: the sqlite3 CLI is missing, so the copy-time CMEK refusal was NOT tested');
    return;
  }
  const dir = tempDir();
  const secondary = tempDir('kw-secondary-');
  const fake = new FakeKms(dir);
  const server = await fakeServer(dir, fake, ['--backup-secondary-dir', secondary]).start();
  try {
    // A plain project's cluster with a dual_region policy: its backup is copied.
    const plain = (await server.api('POST', '/api/v1/projects', { name: 'plain' })).json;
    const src = (await server.api('POST', `/api/v1/projects/${plain.id}/clusters`,
      { name: 'dual', cloud_provider: 'azure', region: 'eastus', tier: 'dedicated' })).json;
    const canaries = await fill(src, 400);
    const set = await server.api('PUT', `/api/v1/clusters/${src.id}/backup-policy`, POLICY);
    assert.equal(set.status, 200, set.text);
    const started = await server.api('POST', `/api/v1/clusters/${src.id}/backups`);
    assert.equal(started.status, 202, started.text);
    const b = await settled(server, started.json.id);
    assert.equal(b.state, 'completed', JSON.stringify(b));
    assert.deepEqual(b.copy, { state: 'completed', destination: `local:${fs.realpathSync(secondary)}`, error: '' });
    const primaryFiles = allFiles(path.join(dir, 'backups', b.id)).map((f) => path.relative(path.join(dir, 'backups'), f)).sort();
    const copyFiles = allFiles(path.join(secondary, b.id)).map((f) => path.relative(secondary, f)).sort();
    assert.deepEqual(copyFiles, primaryFiles);
    for (const f of copyFiles) {
      assert.ok(fs.readFileSync(path.join(secondary, f)).equals(fs.readFileSync(path.join(dir, 'backups', f))), `${f} differs`);
    }
    const hits = canaryHits(secondary, canaries);
    assert.equal(hits.markers, 0, `plaintext in the copy: ${hits.found.join(', ')}`);
    // Listing shows the copy too; deleting the backup deletes the copy.
    const listed = await server.api('GET', `/api/v1/clusters/${src.id}/backups`);
    assert.equal((listed.json.items || listed.json)[0].copy.state, 'completed');
    const del = await server.api('DELETE', `/api/v1/backups/${b.id}`);
    assert.ok(del.status < 300, del.text);
    assert.ok(!fs.existsSync(path.join(secondary, b.id)), 'the copy outlived its backup');

    // Without dual_region: no copy.
    await server.api('PUT', `/api/v1/clusters/${src.id}/backup-policy`, { schedule: 'daily', retention_days: 7 });
    const single = await settled(server, (await server.api('POST', `/api/v1/clusters/${src.id}/backups`)).json.id);
    assert.equal(single.state, 'completed');
    assert.equal(single.copy, undefined);
    assert.ok(!fs.existsSync(path.join(secondary, single.id)));

    // A CMEK project: the API refuses the policy...
    const cmek = (await server.api('POST', '/api/v1/projects', { name: 'cmek', cmek_enabled: true })).json;
    const key = (await server.api('POST', `/api/v1/projects/${cmek.id}/encryption-keys`,
      { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-dual', key_name_prefix: 'dr' } })).json;
    fake.createKey(key.key_name, { region: 'eastus', granted: true });
    assert.equal((await server.api('POST', `/api/v1/projects/${cmek.id}/encryption-keys/${key.id}:test`)).json.state, 'active');
    const cc = (await server.api('POST', `/api/v1/projects/${cmek.id}/clusters`,
      { name: 'cmek-src', cloud_provider: 'azure', region: 'eastus', tier: 'dedicated' })).json;
    await fill(cc, 50);
    const refusedPolicy = await server.api('PUT', `/api/v1/clusters/${cc.id}/backup-policy`, POLICY);
    assert.equal(refusedPolicy.status, 409, refusedPolicy.text);
    // ...and when the policy is in the metadata anyway, the copy is refused at copy time.
    await server.stop();
    const sql = `UPDATE clusters SET backup_policy = '${JSON.stringify(POLICY)}' WHERE id = '${cc.id}';`;
    const r = spawnSync('sqlite3', [path.join(dir, 'metadata.db'), sql], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await server.start();
    const cb = await settled(server, (await server.api('POST', `/api/v1/clusters/${cc.id}/backups`)).json.id);
    assert.equal(cb.state, 'completed', JSON.stringify(cb));
    assert.equal(cb.copy?.state, 'refused', JSON.stringify(cb));
    assert.match(cb.copy.error, /not supported in CMEK-enabled projects/);
    console.log(`copy refused: ${cb.copy.error}`);
    assert.ok(!fs.existsSync(path.join(secondary, cb.id)), 'a CMEK backup was copied');
  } finally {
    await server.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(secondary, { recursive: true, force: true });
  }
});

// The largest object under `dir` (a chunk: flipping a byte in it breaks its AEAD tag).
function largestObject(dir) {
  return allFiles(dir).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
}

function flipByte(file) {
  const bytes = fs.readFileSync(file);
  bytes[Math.floor(bytes.length / 2)] ^= 0x04;
  fs.writeFileSync(file, bytes);
}

async function restoredHolds(cluster, values) {
  const redis = await connect(cluster);
  try {
    await compareAll(redis, values);
  } finally {
    await redis.quit();
  }
}

test('restore from the dual-region copy: on request, when the primary is damaged or gone; a damaged copy is refused naming both, nothing created', async () => {
  const dir = tempDir();
  const secondary = tempDir('kw-secondary-');
  const server = await new Server(dir, ['--backup-secondary-dir', secondary]).start();
  try {
    const src = server.createCluster('dual-src');
    const { values } = makeValues(600);
    const redis = await connect(src);
    await writeAll(redis, values);
    await redis.quit();
    const set = await server.api('PUT', `/api/v1/clusters/${src.id}/backup-policy`, POLICY);
    assert.equal(set.status, 200, set.text);
    const b = await settled(server, (await server.api('POST', `/api/v1/clusters/${src.id}/backups`)).json.id);
    assert.equal(b.state, 'completed', JSON.stringify(b));
    assert.equal(b.copy?.state, 'completed', JSON.stringify(b));
    const copyDest = `local:${fs.realpathSync(secondary)}`;
    const primaryDir = path.join(dir, 'backups');

    // Asked for: read from the copy only, and the answer says so.
    const asked = cliJson(server, ['backup', 'restore', b.id, '--name', 'asked', '--from-copy']);
    assert.equal(asked.code, 0, asked.stderr);
    assert.deepEqual(asked.json.restored_from, { destination: copyDest, copy: true, primary_error: '' });
    await restoredHolds(asked.json, values);
    // Without the flag and with a whole primary: the primary.
    const plain = cliJson(server, ['backup', 'restore', b.id, '--name', 'plain']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.json.restored_from.copy, false);
    assert.equal(plain.json.restored_from.destination, `local:${fs.realpathSync(primaryDir)}`);

    // A flipped byte in the primary: restored from the copy, and the CLI says why.
    const chunk = largestObject(primaryDir);
    const original = fs.readFileSync(chunk);
    flipByte(chunk);
    const damaged = server.cli(['backup', 'restore', b.id, '--name', 'primary-damaged']);
    assert.equal(damaged.code, 0, damaged.stderr);
    assert.match(damaged.stdout, new RegExp(`read from the dual-region copy in ${copyDest} because the primary failed: .*failed authentication`));
    const endpoint = damaged.stdout.match(/endpoint: (\S+)/)[1];
    const password = damaged.stdout.match(/password: (\S+)/)[1];
    await restoredHolds({ endpoint, password }, values);
    fs.writeFileSync(chunk, original);

    // The primary gone altogether (lost disk): restored from the copy.
    fs.rmSync(primaryDir, { recursive: true, force: true });
    const gone = cliJson(server, ['backup', 'restore', b.id, '--name', 'primary-gone']);
    assert.equal(gone.code, 0, gone.stderr);
    assert.equal(gone.json.restored_from.copy, true);
    assert.match(gone.json.restored_from.primary_error, /is not complete/);
    await restoredHolds(gone.json, values);

    // The copy damaged too: refused, naming both failures; no cluster, no files.
    const before = fs.readdirSync(path.join(dir, 'clusters')).sort();
    flipByte(largestObject(secondary));
    const refused = server.cli(['backup', 'restore', b.id, '--name', 'both-damaged']);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /no cluster was created/);
    assert.match(refused.stderr, /is not complete/);
    assert.match(refused.stderr, new RegExp(`the dual-region copy in ${copyDest} failed too: .*failed authentication`));
    assert.equal(server.cli(['cluster', 'get', 'both-damaged']).code, 1, 'a refused restore made a cluster');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'clusters')).sort(), before, 'a refused restore left files');

    // A backup without a copy: --from-copy is refused with the reason.
    await server.api('PUT', `/api/v1/clusters/${src.id}/backup-policy`, { schedule: 'daily', retention_days: 7 });
    const single = await settled(server, (await server.api('POST', `/api/v1/clusters/${src.id}/backups`)).json.id);
    assert.equal(single.state, 'completed', JSON.stringify(single));
    const noCopy = server.cli(['backup', 'restore', single.id, '--name', 'no-copy', '--from-copy']);
    assert.equal(noCopy.code, 1, noCopy.stdout);
    assert.match(noCopy.stderr, /has no dual-region copy/);
  } finally {
    await server.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(secondary, { recursive: true, force: true });
  }
});
