// Backups of `--engine mariadb` clusters through `keyward serve` (fake-KMS build), as a user runs
// them: a CMEK mariadb cluster with InnoDB tables of random canaries, `keyward backup create
// --wait`, the source cluster DELETED (crypto-shredded), `keyward backup restore` into a new
// cluster with a new password: every table's CHECKSUM TABLE identical, zero canaries in every
// backup file (each listed with its size). The restore works without the source's key
// dictionary because the sealed manifest carries the data keys the pages need. Then: a flipped
// byte in a backup chunk → restore refused, no cluster and no staging directory left; the key
// disabled → backup create and restore refused naming the key.
//
// Env: MARIADB_CLUSTER_BACKUP_ROWS (default 3000) rows of canaries.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import mysql from 'mysql2/promise';
import {
  FakeKms, allFiles, canaryHits, fakeServer, keywardBin, makeCanary, sleep, splitEndpoint, tempDir,
} from './harness.mjs';

const ROWS = Number(process.env.MARIADB_CLUSTER_BACKUP_ROWS || 3000);
const PLUGIN_DIR = path.dirname(keywardBin);

function missing() {
  const need = [
    ['/usr/sbin/mariadbd', 'apt mariadb-server'],
    ['/usr/bin/mariadb-backup', 'apt mariadb-backup'],
    ['/usr/bin/mbstream', 'apt mariadb-backup'],
    [path.join(PLUGIN_DIR, 'keyward_key_management.so'), 'apt libmariadbd-dev, then rebuild'],
  ];
  const gone = need.filter(([p]) => !fs.existsSync(p)).map(([p, how]) => `${p} (${how})`);
  return gone.length ? `missing ${gone.join(', ')}` : null;
}
const why = missing();
if (why) console.log(`SKIPPED LOUDLY: mariadb_cluster_backup: ${why}`);

async function connect(endpoint, password, ms = 60000) {
  const { host, port } = splitEndpoint(endpoint);
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await mysql.createConnection({ host, port, user: 'admin', password, connectTimeout: 5000 });
    } catch (e) {
      if (e.code === 'ER_ACCESS_DENIED_ERROR' || Date.now() > deadline) throw e;
      await sleep(300);
    }
  }
}

async function checksums(c, tables) {
  const out = {};
  for (const t of tables) {
    const [[row]] = await c.query(`CHECKSUM TABLE ${t}`);
    out[t] = String(row.Checksum);
  }
  return out;
}

// The CLI is the plain keyward binary (the server under test is the fake-KMS build).
function cli(server, args) {
  const r = spawnSync(keywardBin, args, {
    env: { ...process.env, KEYWARD_SERVER: server.url, KEYWARD_TOKEN: server.token },
    encoding: 'utf8',
    timeout: 300000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cliJson(server, args) {
  const r = cli(server, [...args, '--output', 'json']);
  assert.equal(r.code, 0, `keyward ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout);
}

test('mariadb cluster backup → source deleted → restore as a new cluster: identical rows, no canary in the backup; tampering and a disabled key refused', { skip: why ? `SKIPPED LOUDLY: ${why}` : false, timeout: 900000 }, async () => {
  const dir = tempDir('kw-sqlbk-');
  const fake = new FakeKms(dir);
  // The key monitor stays out of the way: the disabled key must be met by the backup itself.
  const server = fakeServer(dir, fake, ['--key-check-interval', '3600']);
  server.env = { ...server.env, KEYWARD_MARIADB_PLUGIN_DIR: PLUGIN_DIR };
  await server.start();
  try {
    const project = (await server.api('POST', '/api/v1/projects', { name: 'sqlbk', cmek_enabled: true })).json;
    const key = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys`,
      { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-sqlbk', key_name_prefix: 'sql' } })).json;
    fake.createKey(key.key_name, { granted: true });
    const tested = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys/${key.id}:test`)).json;
    assert.equal(tested.state, 'active', JSON.stringify(tested));
    const created = await server.api('POST', `/api/v1/projects/${project.id}/clusters`,
      { name: 'sql-src', cloud_provider: 'azure', region: 'eastus', tier: 'dedicated', engine: 'mariadb' });
    assert.equal(created.status, 201, created.text);
    const source = created.json;

    // Rows of canaries in InnoDB (an ENGINE=Aria table becomes InnoDB too), and one in a table
    // name: names live in plaintext .frm files and system tables, so the stream must be sealed.
    const canaries = [];
    const nameCanary = makeCanary();
    canaries.push(nameCanary);
    const tables = ['app.t', 'app.aria', `app.${nameCanary}`];
    let c = await connect(source.endpoint, source.password);
    await c.query('CREATE DATABASE app');
    await c.query('CREATE TABLE app.t (id INT PRIMARY KEY, canary CHAR(40), pad VARCHAR(200)) ENGINE=InnoDB');
    await c.query('CREATE TABLE app.aria (id INT PRIMARY KEY, canary CHAR(40)) ENGINE=Aria');
    await c.query(`CREATE TABLE app.${nameCanary} (id INT PRIMARY KEY, v INT)`);
    await c.query(`INSERT INTO app.${nameCanary} VALUES (1, 1), (2, 4)`);
    for (let i = 0; i < ROWS; i += 500) {
      const rows = [];
      for (let j = i; j < Math.min(ROWS, i + 500); j++) {
        const k = makeCanary();
        canaries.push(k);
        rows.push([j, k, 'p'.repeat(j % 200)]);
      }
      await c.query('INSERT INTO app.t VALUES ?', [rows]);
      await c.query('INSERT INTO app.aria VALUES ?', [rows.map(([id, k]) => [id, k])]);
    }
    const before = await checksums(c, tables);
    await c.end();

    // Backup through the CLI, as for kv clusters.
    let t0 = Date.now();
    const backup = cliJson(server, ['backup', 'create', source.id, '--wait']);
    const backupMs = Date.now() - t0;
    assert.equal(backup.state, 'completed', JSON.stringify(backup));
    assert.equal(backup.key_id, key.id);
    assert.ok(backup.bytes > 0, 'the backup counted its bytes');
    console.log(`backup: ${backup.bytes} bytes in ${backupMs} ms = ${(backup.bytes / 1e6 / (backupMs / 1000)).toFixed(1)} MB/s (noisy shared machine)`);
    const listed = cliJson(server, ['backup', 'list', source.id]);
    assert.deepEqual(listed.map((b) => b.id), [backup.id]);

    // Every backup file: listed with its size, no canary (rows nor name), no plaintext file
    // name of the mbstream (a stream in the clear would show them).
    const backupsDir = path.join(dir, 'backups');
    const files = allFiles(backupsDir);
    let total = 0;
    for (const f of files) {
      const size = fs.statSync(f).size;
      total += size;
      console.log(`  scanned ${path.relative(backupsDir, f)} ${size} bytes`);
    }
    console.log(`  ${files.length} backup files, ${total} bytes scanned`);
    assert.ok(files.length >= 2, 'the backup has chunks and a manifest');
    const hits = canaryHits(backupsDir, canaries);
    assert.equal(hits.markers, 0, `canaries in the backup: ${hits.found.join(', ')}`);
    for (const f of files) {
      const text = fs.readFileSync(f).toString('latin1');
      for (const clear of ['backup-my.cnf', 'xtrabackup_checkpoints', 'ibdata1', '.frm']) {
        assert.ok(!text.includes(clear), `'${clear}' in the clear in ${f}`);
      }
    }

    // The source goes: its dictionary (and so its data keys) crypto-shredded; the backup stays.
    const deleted = await server.api('DELETE', `/api/v1/clusters/${source.id}`);
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal(deleted.json.backups.kept, 1, deleted.text);
    assert.ok(!fs.existsSync(path.join(dir, 'clusters', source.id)), 'the source cluster\'s files stayed');

    t0 = Date.now();
    const restored = cliJson(server, ['backup', 'restore', backup.id, '--name', 'sql-restored']);
    const restoreMs = Date.now() - t0;
    console.log(`restore (verify, prepare, start): ${backup.bytes} bytes in ${restoreMs} ms = ${(backup.bytes / 1e6 / (restoreMs / 1000)).toFixed(1)} MB/s (noisy shared machine)`);
    assert.equal(restored.engine, 'mariadb');
    assert.equal(restored.state, 'available');
    assert.notEqual(restored.id, source.id);
    assert.ok(restored.password && restored.password !== source.password, 'a new password, shown once');
    await assert.rejects(connect(restored.endpoint, source.password, 5000), 'the source\'s password still opens the restored cluster');
    c = await connect(restored.endpoint, restored.password);
    assert.deepEqual(await checksums(c, tables), before, 'CHECKSUM TABLE differs after the restore');
    const [[{ n }]] = await c.query('SELECT COUNT(*) AS n FROM app.t');
    assert.equal(Number(n), ROWS);
    const [[enc]] = await c.query("SELECT COUNT(*) AS n FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='app/t' AND ENCRYPTION_SCHEME=1");
    assert.equal(Number(enc.n), 1, 'the restored app.t is not encrypted');
    await c.query('INSERT INTO app.t VALUES (?, ?, ?)', [ROWS, 'after-restore', '']);
    await c.end();

    // A flipped byte in one chunk: refused naming the backup, no cluster, nothing staged.
    const clustersBefore = fs.readdirSync(path.join(dir, 'clusters')).sort();
    const chunks = allFiles(path.join(backupsDir, backup.id, 'data')).sort();
    const victim = chunks[Math.floor(chunks.length / 2)];
    const buf = fs.readFileSync(victim);
    const at = Math.floor(buf.length / 2);
    buf[at] ^= 0x01;
    fs.writeFileSync(victim, buf);
    const bad = await server.api('POST', `/api/v1/backups/${backup.id}:restore`, { name: 'sql-flipped' });
    assert.equal(bad.status, 409, bad.text);
    assert.match(bad.text, new RegExp(backup.id));
    assert.match(bad.text, /no cluster was created/);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'clusters')).sort(), clustersBefore, 'a half-restored cluster directory stayed');
    const names = (await server.api('GET', `/api/v1/projects/${project.id}/clusters`)).json.items.map((x) => x.name);
    assert.ok(!names.includes('sql-flipped'), `a cluster was created: ${names}`);
    buf[at] ^= 0x01;
    fs.writeFileSync(victim, buf);

    // The key disabled: a backup of the restored cluster is refused at once, naming the key.
    fake.update(key.key_name, { enabled: false });
    const refused = await server.api('POST', `/api/v1/clusters/${restored.id}/backups`);
    assert.equal(refused.status, 409, refused.text);
    assert.ok(refused.text.includes(key.id) && refused.text.includes(key.key_name), `the refusal does not name the key: ${refused.text}`);
    const after = cliJson(server, ['backup', 'list', restored.id]);
    assert.equal(after.length, 0, `a refused backup left a record: ${JSON.stringify(after)}`);
    // ...and a restore too (the backup key cannot be unwrapped), with nothing created.
    const noKey = await server.api('POST', `/api/v1/backups/${backup.id}:restore`, { name: 'sql-nokey' });
    assert.ok(noKey.status >= 400 && noKey.status < 500, noKey.text);
    assert.match(noKey.text, /restore refused, no cluster was created/);
    assert.ok(noKey.text.includes(key.key_name), `the refusal does not name the key: ${noKey.text}`);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'clusters')).sort(), clustersBefore, 'a refused restore left a directory');
    fake.update(key.key_name, { enabled: true });

    // Delete through the CLI: the backup's objects go.
    const gone = cli(server, ['backup', 'delete', backup.id]);
    assert.equal(gone.code, 0, gone.stderr);
    assert.ok(!fs.existsSync(path.join(backupsDir, backup.id)), 'the deleted backup\'s objects stayed');
  } finally {
    await server.stop('SIGKILL');
    // mariadbd dies with keyward (PR_SET_PDEATHSIG); give it a moment before its files go.
    await sleep(500);
    if (!process.env.KEEP_DIR) fs.rmSync(dir, { recursive: true, force: true });
  }
});

