// Backups of an encrypted mariadbd (issue 13): mariadb-backup's stream sealed into keyward's
// backup format, restored through mbstream and mariadb-backup --prepare with keys from the same
// dictionary into a NEW instance: every table's CHECKSUM TABLE equal, and not one canary — nor
// the stream's own plaintext file names — in the backup's files. A flipped byte in the backup is
// refused before any instance starts, and leaves no data directory behind.
// Runs keyward-mariadb-backup-tool (tests/support/mariadb_backup_tool.cc): MariadbKeyService +
// InitializeDataDir + mariadbd + BackUpMariadb/RestoreMariadbBackup, without the control plane.
// MARIADB_BACKUP_ROWS (default 3000) sets the rows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import mysql from 'mysql2/promise';
import {
  allFiles, canaryHits, fakeKmsBin, freePort, keywardBin, makeCanary, sleep, tempDir,
} from './harness.mjs';

const toolBin = process.env.KEYWARD_MARIADB_BACKUP_TOOL_BIN ||
  path.join(path.dirname(fakeKmsBin), 'keyward-mariadb-backup-tool');
const pluginDir = path.dirname(keywardBin);
const ROWS = Number(process.env.MARIADB_BACKUP_ROWS || 3000);
const PASSWORD = 'pw-' + makeCanary().slice(8, 24);

const missing = [
  ['/usr/sbin/mariadbd', '/usr/sbin/mariadbd (apt mariadb-server)'],
  ['/usr/bin/mariadb-backup', '/usr/bin/mariadb-backup (apt mariadb-backup)'],
  ['/usr/bin/mbstream', '/usr/bin/mbstream (apt mariadb-backup)'],
  [toolBin, toolBin],
  [path.join(pluginDir, 'keyward_key_management.so'),
    `${pluginDir}/keyward_key_management.so (apt libmariadbd-dev, then rebuild)`],
].filter(([p]) => !fs.existsSync(p)).map(([, what]) => what);
const skip = missing.length ? `SKIPPED LOUDLY: missing ${missing.join(', ')}` : false;
if (skip) console.log(skip);

// The tool's stdout answers commands line by line.
class Tool {
  constructor(dir, port) {
    this.dir = dir;
    this.port = port;
    this.lines = [];
    this.waiters = [];
    this.stderr = '';
  }
  start() {
    this.proc = spawn(toolBin, ['--dir', this.dir, '--port', String(this.port), '--plugin-dir', pluginDir],
      { env: { ...process.env, KW_ADMIN_PASSWORD: PASSWORD }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d) => { this.stderr = (this.stderr + d.toString()).slice(-20000); });
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l); else this.lines.push(l);
    });
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
    return this.next(180000);
  }
  next(ms) {
    if (this.lines.length) return Promise.resolve(this.lines.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`tool: no answer in ${ms} ms; stderr tail:\n${this.stderr.slice(-3000)}`)), ms);
      this.waiters.push((l) => { clearTimeout(t); resolve(l); });
    });
  }
  command(cmd, ms = 300000) {
    const p = this.next(ms);
    this.proc.stdin.write(cmd + '\n');
    return p;
  }
  async quit() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.stdin.write('quit\n');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 90000);
    await this.exited;
    clearTimeout(t);
  }
}

async function connect(port, ms = 120000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await mysql.createConnection({ host: '127.0.0.1', port, user: 'admin', password: PASSWORD });
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`mariadbd on ${port} not reachable: ${e.message}`);
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

let dir;
let tool;
const canaries = [];
const tables = [];
let before_;

before(async () => {
  if (skip) return;
  dir = tempDir('kw-mariadb-backup-');
  tool = new Tool(path.join(dir, 'src'), await freePort());
  const ready = await tool.start();
  assert.match(ready, /^ready \d+$/, `tool did not start: ${ready}\n${tool.stderr.slice(-3000)}`);
});

after(async () => {
  if (tool) await tool.quit();
  if (dir && !process.env.KEEP_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

test('backup → restore into a new instance: identical rows, no canary in the backup', { skip, timeout: 600000 }, async () => {
  const c = await connect(tool.port);
  await c.query('CREATE DATABASE app');
  // A canary in a table NAME too: .frm files and the system tables keep names in the clear.
  const nameCanary = makeCanary();
  canaries.push(nameCanary);
  tables.push('app.t', 'app.aria', `app.${nameCanary}`);
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
  before_ = await checksums(c, tables);
  await c.end();

  const dest = path.join(dir, 'dest');
  const t0 = Date.now();
  const backed = await tool.command(`backup ${dest} b-1`);
  assert.match(backed, /^backed-up \d+ \d+$/, `${backed}\n${tool.stderr.slice(-3000)}`);
  const [, bytes, objects] = backed.split(' ').map(Number);
  console.log(`backup: ${bytes} stream bytes in ${objects} objects, ${Date.now() - t0} ms`);

  // Every file of the backup: no canary (rows nor table name), nor the names of the plaintext
  // files mbstream carries (a stream in the clear would show them).
  const files = allFiles(dest);
  for (const f of files) console.log(`  scanned ${path.relative(dest, f)} ${fs.statSync(f).size} bytes`);
  assert.ok(files.length >= 2, 'the backup has chunks and a manifest');
  const hits = canaryHits(dest, canaries);
  assert.equal(hits.markers, 0, `canaries in the backup: ${hits.found.join(', ')}`);
  for (const f of files) {
    const text = fs.readFileSync(f).toString('latin1');
    for (const clear of ['backup-my.cnf', 'xtrabackup_checkpoints', 'ibdata1', '.frm']) {
      assert.ok(!text.includes(clear), `'${clear}' in the clear in ${f}`);
    }
  }

  const newPort = await freePort();
  const t1 = Date.now();
  const restored = await tool.command(`restore ${dest} b-1 ${path.join(dir, 'restored')} ${newPort}`);
  assert.match(restored, /^restored \d+$/, `${restored}\n${tool.stderr.slice(-3000)}`);
  const r = await connect(newPort);
  console.log(`restore + start: ${Date.now() - t1} ms`);
  const after_ = await checksums(r, tables);
  assert.deepEqual(after_, before_, 'CHECKSUM TABLE differs after the restore');
  const [[{ n }]] = await r.query('SELECT COUNT(*) AS n FROM app.t');
  assert.equal(Number(n), ROWS);
  // The restored instance is encrypted too and writes.
  const [[enc]] = await r.query("SELECT COUNT(*) AS n FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='app/t' AND ENCRYPTION_SCHEME=1");
  assert.equal(Number(enc.n), 1, 'the restored app.t is not encrypted');
  await r.query('INSERT INTO app.t VALUES (?, ?, ?)', [ROWS, 'after-restore', '']);
  await r.end();
});

test('a flipped byte in the backup is refused, with no instance started and nothing left', { skip, timeout: 300000 }, async () => {
  const dest = path.join(dir, 'dest');
  assert.ok(fs.existsSync(dest), 'needs the backup of the test above');
  const bad = path.join(dir, 'dest-flipped');
  fs.cpSync(dest, bad, { recursive: true });
  const chunks = allFiles(path.join(bad, 'b-1', 'data')).sort();
  const victim = chunks[Math.floor(chunks.length / 2)];
  const buf = fs.readFileSync(victim);
  buf[Math.floor(buf.length / 2)] ^= 0x01;
  fs.writeFileSync(victim, buf);

  const port = await freePort();
  const target = path.join(dir, 'restored-bad');
  const answer = await tool.command(`restore ${bad} b-1 ${target} ${port}`);
  assert.match(answer, /^error /, `a damaged backup restored: ${answer}`);
  assert.match(answer, /b-1/, 'the error names the backup');
  assert.match(answer, /nothing was restored/);
  assert.ok(!fs.existsSync(path.join(target, 'data')), 'a half-restored data dir stayed');
  await assert.rejects(mysql.createConnection({ host: '127.0.0.1', port, user: 'admin', password: PASSWORD, connectTimeout: 2000 }),
    'an instance answers on the damaged restore\'s port');
});

test('a restore with no keys served fails closed: prepare refused, nothing left', { skip, timeout: 300000 }, async () => {
  const dest = path.join(dir, 'dest');
  assert.ok(fs.existsSync(dest), 'needs the backup of the first test');
  const port = await freePort();
  const target = path.join(dir, 'restored-nokeys');
  const answer = await tool.command(`restore ${dest} b-1 ${target} ${port} nokeys`);
  assert.match(answer, /^error /, `restored without keys: ${answer}`);
  assert.match(answer, /mariadb-backup --prepare/, 'the error names the step that needed the keys');
  assert.ok(!fs.existsSync(path.join(target, 'data')), 'a half-restored data dir stayed');
});
