// An encrypted mariadbd under keyward's keys (issue 13, key plugin and "everything at rest
// encrypted"): canaries written through mysql2 and the `mariadb` CLI — InnoDB and Aria tables,
// a transaction and a rolled-back one, a large sort and an on-disk temporary table, binlog
// writes — then mariadbd stops cleanly and every file under the cluster directory is scanned:
// zero canary hits. Also: a process that is not the cluster's mariadbd gets no key; with keyward
// gone mariadbd refuses to start; a data-key rotation re-encrypts every tablespace.
// Runs keyward-mariadb-keyd (tests/support/mariadb_keyd.cc): MariadbKeyService +
// InitializeDataDir + mariadbd, without the control plane. MARIADB_ROWS (default 100000, the
// issue's figure: ~30 s here) sets the rows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import mysql from 'mysql2/promise';
import {
  allFiles, canaryHits, fakeKmsBin, freePort, haveCommand, keywardBin, makeCanary, sleep, tempDir,
} from './harness.mjs';

const keydBin = process.env.KEYWARD_MARIADB_KEYD_BIN ||
  path.join(path.dirname(fakeKmsBin), 'keyward-mariadb-keyd');
const pluginDir = path.dirname(keywardBin);
const MARIADBD = '/usr/sbin/mariadbd';
const ROWS = Number(process.env.MARIADB_ROWS || 100000);
const PASSWORD = 'pw-' + makeCanary().slice(8, 24);
// MARIADB_PLAINTEXT_FOR_TEST=1 runs mariadbd without encryption: the scan must then fail (shows
// the test can fail; not for CI).
const PLAINTEXT = process.env.MARIADB_PLAINTEXT_FOR_TEST === '1';

const missing = [
  [fs.existsSync(MARIADBD), `${MARIADBD} (apt mariadb-server)`],
  [haveCommand('mariadb'), 'the mariadb CLI (apt mariadb-client)'],
  [fs.existsSync(keydBin), keydBin],
  [fs.existsSync(path.join(pluginDir, 'keyward_key_management.so')),
    `${pluginDir}/keyward_key_management.so (apt libmariadbd-dev, then rebuild)`],
].filter(([ok]) => !ok).map(([, what]) => what);
const skip = missing.length ? `SKIPPED LOUDLY: missing ${missing.join(', ')}` : false;
if (skip) console.log(skip);

// One keyward-mariadb-keyd: its stdout answers commands line by line.
class Keyd {
  constructor(dir, port) {
    this.dir = dir;
    this.port = port;
    this.lines = [];
    this.waiters = [];
    this.stderr = '';
  }
  start() {
    const args = ['--dir', this.dir, '--port', String(this.port), '--plugin-dir', pluginDir];
    if (PLAINTEXT) args.push('--plaintext');
    this.proc = spawn(keydBin, args,
      { env: { ...process.env, KW_ADMIN_PASSWORD: PASSWORD }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d) => { this.stderr += d.toString(); });
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => {
      this.lines.push(l);
      for (const w of [...this.waiters]) if (w.test(l)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(l); }
    });
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
    return this.expect(/^ready /, 120000);
  }
  expect(re, ms = 60000) {
    const seen = this.lines.find((l) => re.test(l));
    if (seen) { this.lines.splice(this.lines.indexOf(seen), 1); return Promise.resolve(seen); }
    return new Promise((resolve, reject) => {
      const w = { test: (l) => re.test(l), resolve: (l) => { clearTimeout(t); this.lines.splice(this.lines.indexOf(l), 1); resolve(l); } };
      const t = setTimeout(() => reject(new Error(`keyd: no line ${re} in ${ms} ms; stderr tail:\n${this.stderr.slice(-3000)}`)), ms);
      this.waiters.push(w);
    });
  }
  async command(cmd, re, ms) {
    const p = this.expect(re, ms);
    this.proc.stdin.write(cmd + '\n');
    return p;
  }
  async quit() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.stdin.write('quit\n');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 60000);
    await this.exited;
    clearTimeout(t);
  }
}

async function connect(port, ms = 120000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await mysql.createConnection({ host: '127.0.0.1', port, user: 'admin', password: PASSWORD, multipleStatements: false });
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`mariadbd on ${port} not reachable: ${e.message}`);
      await sleep(300);
    }
  }
}

function cli(port, sql) {
  const r = spawnSync('mariadb', ['-h', '127.0.0.1', '-P', String(port), '-u', 'admin', '--batch', '--skip-column-names', '-e', sql],
    { env: { ...process.env, MYSQL_PWD: PASSWORD }, encoding: 'utf8' });
  assert.equal(r.status, 0, `mariadb CLI failed: ${r.stderr}`);
  return r.stdout.trim();
}

// mariadbd started by hand, not by keyward: what a user sees when the keys are not served.
function mariadbdByHand(dir) {
  const args = [`--defaults-file=${path.join(dir, 'run', 'my.cnf')}`];
  if (process.getuid() === 0) args.push('--user=root');
  const r = spawnSync(MARIADBD, args, { encoding: 'utf8', timeout: 90000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

// The cluster's admin account trying every way out of "no FILE, encryption on" the adversarial
// review found on MariaDB 10.11 (SUPER, global variables, writes to the mysql schema): each is
// refused, and the rows it tries to put in plaintext are canaries the scan looks for.
async function adminEscapesRefused(c) {
  const refused = async (sql, why) => {
    await assert.rejects(c.query(sql), /denied|privilege|secure-file-priv/i, `admin could: ${sql} (${why})`);
  };
  // (a) engine rule off for the session, then a MyISAM table: plaintext rows.
  await refused('SET SESSION enforce_storage_engine = NULL', 'InnoDB-only rule off');
  await c.query('CREATE TABLE app.myi (id INT PRIMARY KEY, canary CHAR(40)) ENGINE=MyISAM');
  const myi = makeCanary();
  canaries.push(myi);
  await c.query('INSERT INTO app.myi VALUES (1, ?)', [myi]);
  const [[eng]] = await c.query("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA='app' AND TABLE_NAME='myi'");
  assert.equal(eng.ENGINE, 'InnoDB', 'ENGINE=MyISAM was not turned into InnoDB');
  // (b), (c) global variables that turn encryption or logging off, or write files anywhere.
  await refused('SET GLOBAL innodb_encrypt_tables = OFF', 'encryption off');
  await refused('SET GLOBAL innodb_encryption_threads = 0', 're-encryption stopped');
  await refused("SET GLOBAL log_output = 'TABLE'", 'queries into a log table');
  await refused(`SET GLOBAL general_log_file = '${path.join(dir, 'escape.log')}'`, 'log anywhere');
  await refused('SET GLOBAL general_log = 1', 'plaintext query log');
  // (d) writes to the grant tables, then FLUSH PRIVILEGES = any privilege (FILE).
  await refused("UPDATE mysql.global_priv SET priv = JSON_SET(priv, '$.access', 1073741823) WHERE User = 'admin'", 'grant tables');
  await refused("INSERT INTO mysql.db (Host, Db, User, Select_priv) VALUES ('%', 'x', 'admin', 'Y')", 'grant tables');
  await refused('CREATE TABLE mysql.escape (id INT)', 'tables in mysql');
  await refused('DROP TABLE mysql.db', 'grant tables');
  await refused('FLUSH PRIVILEGES', 'RELOAD');
  await refused('GRANT FILE ON *.* TO admin', 'grant to self');
  await refused("CREATE USER other IDENTIFIED BY 'x'", 'new accounts');
  await refused('SHUTDOWN', 'SHUTDOWN');
  // FILE itself: no file out, none in (keyward's escrow key and tokens live beside the data).
  await refused(`SELECT canary FROM app.t LIMIT 10 INTO OUTFILE '${path.join(dir, 'out.txt')}'`, 'FILE');
  const [[loaded]] = await c.query('SELECT LOAD_FILE(?) f', [path.join(dir, 'run', 'my.cnf')]);
  assert.equal(loaded.f, null, 'LOAD_FILE read a file');
  assert.ok(!fs.existsSync(path.join(dir, 'out.txt')) && !fs.existsSync(path.join(dir, 'escape.log')));
  // Whoever holds FILE (only root through the socket) is confined to an empty private directory.
  const [[priv]] = await c.query('SELECT @@GLOBAL.secure_file_priv p');
  const filesDir = path.join(dir, 'run', 'files');
  assert.equal(path.resolve(priv.p), filesDir);
  assert.equal(fs.statSync(filesDir).mode & 0o777, 0o700);
  // Still an application owner: reads the mysql schema, owns every other database.
  await c.query('SELECT COUNT(*) FROM mysql.global_priv');
  await c.query('CREATE DATABASE owned');
  await c.query('CREATE TABLE owned.t (id INT PRIMARY KEY) ENGINE=InnoDB');
  await c.query('CREATE VIEW owned.v AS SELECT id FROM owned.t');
  await c.query('DROP DATABASE owned');
}

let dir;
let port;
let keyd;
const canaries = [];
let rowsExpected = 0;
let checksum;

before(async () => {
  if (skip) return;
  dir = tempDir('kw-mariadb-');
  port = await freePort();
  keyd = new Keyd(dir, port);
  await keyd.start();
});

after(async () => {
  if (keyd) await keyd.quit();
  if (dir && !process.env.KEEP_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

test('every file at rest is encrypted: no canary anywhere under the cluster directory', { skip }, async () => {
  const c = await connect(port);
  // No passwordless root and no anonymous account over TCP: only the admin account.
  for (const user of ['root', '']) {
    await assert.rejects(mysql.createConnection({ host: '127.0.0.1', port, user, password: '' }),
      /Access denied/, `account '${user}' logged in without a password`);
  }
  await assert.rejects(mysql.createConnection({ host: '127.0.0.1', port, user: 'admin', password: 'wrong' }), /Access denied/);
  await c.query('CREATE DATABASE app');
  await c.query('CREATE TABLE app.t (id INT PRIMARY KEY, canary CHAR(40), pad VARCHAR(200)) ENGINE=InnoDB');
  // Aria's own log is never encrypted: ENGINE=Aria must become InnoDB, with a warning.
  await c.query('CREATE TABLE app.aria (id INT PRIMARY KEY, canary CHAR(40)) ENGINE=Aria');
  const [warnings] = await c.query('SHOW WARNINGS');
  assert.ok(warnings.some((w) => /InnoDB/.test(w.Message)), `no engine-substitution warning: ${JSON.stringify(warnings)}`);
  const [[eng]] = await c.query("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA='app' AND TABLE_NAME='aria'");
  assert.equal(eng.ENGINE, 'InnoDB');

  const started = Date.now();
  for (let base = 0; base < ROWS; base += 1000) {
    const rows = [];
    for (let i = base; i < Math.min(ROWS, base + 1000); i++) {
      const k = makeCanary();
      canaries.push(k);
      rows.push([i, k, k.repeat(4)]);
    }
    await c.query('INSERT INTO app.t VALUES ?', [rows]);
  }
  rowsExpected = ROWS;
  const ariaRows = canaries.slice(0, 500).map((k, i) => [i, k]);
  await c.query('INSERT INTO app.aria VALUES ?', [ariaRows]);
  console.log(`inserted ${ROWS} rows in ${Date.now() - started} ms`);

  // A committed transaction and a rolled-back one (its canaries reach the undo log only).
  await c.beginTransaction();
  const tx = makeCanary();
  canaries.push(tx);
  await c.query('INSERT INTO app.t VALUES (?, ?, ?)', [ROWS, tx, tx]);
  await c.query('UPDATE app.t SET pad = ? WHERE id < 100', [tx]);
  await c.commit();
  rowsExpected++;
  await c.beginTransaction();
  const rolled = makeCanary();
  canaries.push(rolled);
  await c.query('INSERT INTO app.t VALUES (?, ?, ?)', [ROWS + 1, rolled, rolled]);
  await c.rollback();

  // User temporary table (InnoDB temporary tablespace).
  await c.query('CREATE TEMPORARY TABLE app.tmp (canary CHAR(40))');
  await c.query('INSERT INTO app.tmp SELECT canary FROM app.t LIMIT 5000');

  // A sort too large for the sort buffer merges through temporary files in tmpdir, and a
  // GROUP BY too large for memory makes an on-disk (Aria) internal temporary table.
  // (Counters compared before/after: FLUSH STATUS needs RELOAD, which the admin lacks.)
  const status = async (name) => Number((await c.query(`SHOW SESSION STATUS LIKE '${name}'`))[0][0].Value);
  await c.query('SET SESSION sort_buffer_size = 32768');
  const mergeBefore = await status('Sort_merge_passes');
  const [sorted] = await c.query('SELECT canary, pad FROM app.t ORDER BY pad DESC, canary');
  assert.equal(sorted.length, rowsExpected);
  assert.ok(await status('Sort_merge_passes') > mergeBefore, 'the sort did not spill to temporary files');
  await c.query('SET SESSION tmp_table_size = 16384, max_heap_table_size = 16384');
  const diskBefore = await status('Created_tmp_disk_tables');
  const [grouped] = await c.query('SELECT canary, COUNT(*) n FROM app.t GROUP BY canary, pad');
  assert.equal(grouped.length, rowsExpected);
  assert.ok(await status('Created_tmp_disk_tables') > diskBefore, 'no on-disk temporary table');

  await adminEscapesRefused(c);

  // The mariadb CLI: a binlog-producing write (the binlog holds every write above too).
  const cliCanary = makeCanary();
  canaries.push(cliCanary);
  cli(port, `INSERT INTO app.t VALUES (${ROWS + 2}, '${cliCanary}', 'cli')`);
  rowsExpected++;
  assert.equal(cli(port, `SELECT canary FROM app.t WHERE id = ${ROWS + 2}`), cliCanary);
  const [logs] = await c.query('SHOW BINARY LOGS');
  const binlogBytes = logs.reduce((n, l) => n + Number(l.File_size), 0);
  assert.ok(binlogBytes > ROWS * 40, `binlog only ${binlogBytes} bytes`);
  const [[sum]] = await c.query('CHECKSUM TABLE app.t');
  checksum = String(sum.Checksum);
  await c.end();

  const stopped = await keyd.command('stop-mysql', /^stopped /, 120000);
  assert.equal(stopped, 'stopped 0', 'mariadbd did not shut down cleanly');

  let total = 0;
  for (const f of allFiles(dir)) {
    const size = fs.statSync(f).size;
    total += size;
    console.log(`scanned ${path.relative(dir, f)} ${size} bytes`);
  }
  const hits = canaryHits(dir, canaries);
  console.log(`scanned ${allFiles(dir).length} files, ${total} bytes, for ${canaries.length} canaries: ${hits.markers} hits`);
  assert.equal(hits.markers, 0, `canaries in plaintext: ${hits.found.join('; ')}`);
  assert.ok(total > ROWS * 100, 'the data is not on disk at all');
});

test('no key for anyone but the cluster mariadbd; without keyward mariadbd refuses to start', { skip }, async () => {
  // A process that is not the cluster's mariadbd (this test) asks the socket directly.
  const sock = path.join(dir, 'keys', 'mariadb-keys.sock');
  const answer = await new Promise((resolve) => {
    const s = net.connect(sock);
    const chunks = [];
    const req = Buffer.alloc(16);
    req.write('KWK1', 0);
    req.writeUInt32LE(2, 4);
    req.writeUInt32LE(1, 8);
    req.writeUInt32LE(1, 12);
    s.on('connect', () => s.end(req));
    s.on('data', (d) => chunks.push(d));
    // The server may close before the request is even written (EPIPE/ECONNRESET): no answer.
    s.on('error', () => resolve(Buffer.concat(chunks)));
    s.on('close', () => resolve(Buffer.concat(chunks)));
  });
  assert.equal(answer.length, 0, 'a foreign process got an answer from the key socket');

  // mariadbd started by hand: not the pid keyward allows, so the plugin gets nothing.
  const refused = mariadbdByHand(dir);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /keyward_key_management: keyward does not answer/);
  await sleep(200);
  assert.match(keyd.stderr, /mariadb\.key_peer_refused/);

  // keyward gone: the same refusal, and nothing was served.
  await keyd.command('stop-keys', /^keys-stopped/);
  const gone = mariadbdByHand(dir);
  assert.notEqual(gone.status, 0);
  assert.match(gone.stderr, /keyward does not answer/);
  await keyd.quit();

  // Back under keyward: every row is there.
  keyd = new Keyd(dir, port);
  await keyd.start();
  const c = await connect(port);
  const [[n]] = await c.query('SELECT COUNT(*) n FROM app.t');
  assert.equal(Number(n.n), rowsExpected);
  const [[sum]] = await c.query('CHECKSUM TABLE app.t');
  assert.equal(String(sum.Checksum), checksum);
  await c.end();
});

test('data-key rotation: MariaDB re-encrypts every tablespace off the old key version', { skip }, async () => {
  const c = await connect(port);
  const [before] = await c.query('SELECT NAME, MIN_KEY_VERSION, CURRENT_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION');
  assert.ok(before.length > 0);
  const old = Math.max(...before.map((r) => Number(r.MIN_KEY_VERSION)));
  const modified = async () => Number((await c.query("SHOW GLOBAL STATUS LIKE 'Innodb_encryption_rotation_pages_modified'"))[0][0].Value);
  const modifiedBefore = await modified();
  const [[size]] = await c.query("SELECT DATA_LENGTH + INDEX_LENGTH b FROM information_schema.TABLES WHERE TABLE_SCHEMA='app' AND TABLE_NAME='t'");
  // "rotated <data-key id> version <MariaDB key version>" (version = 2 x id, key_service.h).
  const rotated = Number((await keyd.command('rotate', /^rotated /)).split(' ')[3]);
  assert.ok(rotated > old, `new key version ${rotated} not above ${old}`);
  const started = Date.now();
  const bound = Number(process.env.MARIADB_ROTATION_SECONDS || 180) * 1000;
  let left;
  for (;;) {
    [left] = await c.query(
      'SELECT NAME, MIN_KEY_VERSION, CURRENT_KEY_VERSION, ROTATING_OR_FLUSHING FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE MIN_KEY_VERSION <= ? OR CURRENT_KEY_VERSION <> ? OR ROTATING_OR_FLUSHING <> 0', [old, rotated]);
    if (left.length === 0) break;
    if (Date.now() - started > bound) assert.fail(`tablespaces still on key version ${old} after ${bound} ms: ${JSON.stringify(left.slice(0, 5))}`);
    await sleep(500);
  }
  // The pages were rewritten under the new key, not just relabelled: at least app.t's pages.
  const rewritten = (await modified()) - modifiedBefore;
  console.log(`re-encrypted every tablespace to key version ${rotated} in ${Date.now() - started} ms (${rewritten} pages rewritten)`);
  assert.ok(rewritten >= Number(size.b) / 16384, `only ${rewritten} pages rewritten for ${size.b} bytes of app.t`);
  const [[n]] = await c.query('SELECT COUNT(*) n FROM app.t');
  assert.equal(Number(n.n), rowsExpected);
  const [[sum]] = await c.query('CHECKSUM TABLE app.t');
  assert.equal(String(sum.Checksum), checksum);
  await c.end();
});
