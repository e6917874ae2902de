// MariaDB Galera under keyward's keys (issue 13, multi-node): three encrypted mariadbd nodes on
// loopback, one key dictionary, replication and SST over TLS with a cluster-private CA, gcaches
// on /dev/shm. Writes through any node read on the others; kill -9 of one node under write load
// loses no acknowledged transaction on the survivors, and the restarted node catches up (IST or
// SST) with every one of them.
// Runs keyward-mariadb-galera-tool (tests/support/mariadb_galera_tool.cc), no control plane.
// GALERA_LOAD_MS (default 3000) sets how long the writers run around the kill.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import mysql from 'mysql2/promise';
import { allFiles, fakeKmsBin, freePort, keywardBin, makeCanary, sleep, tempDir } from './harness.mjs';

const toolBin = process.env.KEYWARD_MARIADB_GALERA_TOOL_BIN ||
  path.join(path.dirname(fakeKmsBin), 'keyward-mariadb-galera-tool');
const pluginDir = path.dirname(keywardBin);
const LOAD_MS = Number(process.env.GALERA_LOAD_MS || 3000);
const PASSWORD = 'pw-' + makeCanary().slice(8, 24);
const NODES = 3;

const socatTls = spawnSync('sh', ['-c', 'socat -V 2>/dev/null | grep -q WITH_OPENSSL']).status === 0;
const missing = [
  ['/usr/lib/galera/libgalera_smm.so', '/usr/lib/galera/libgalera_smm.so (apt galera-4)'],
  ['/usr/sbin/mariadbd', '/usr/sbin/mariadbd (apt mariadb-server)'],
  ['/usr/bin/mariadb-backup', '/usr/bin/mariadb-backup (apt mariadb-backup; Galera SST)'],
  ['/usr/bin/wsrep_sst_mariabackup', '/usr/bin/wsrep_sst_mariabackup (apt mariadb-server)'],
  ['/dev/shm', '/dev/shm (the gcaches must be memory-backed)'],
  [toolBin, toolBin],
  [path.join(pluginDir, 'keyward_key_management.so'),
    `${pluginDir}/keyward_key_management.so (apt libmariadbd-dev, then rebuild)`],
].filter(([p]) => !fs.existsSync(p)).map(([, what]) => what);
if (!socatTls) missing.push('socat with OpenSSL (apt socat; SST over TLS)');
const skip = missing.length ? `SKIPPED LOUDLY: missing ${missing.join(', ')}` : false;
if (skip) console.log(skip);

class Tool {
  constructor(dir, name, ports) {
    this.args = ['--dir', dir, '--name', name, '--plugin-dir', pluginDir, '--ports', ports.join(',')];
    this.lines = [];
    this.waiters = [];
    this.stderr = '';
  }
  start() {
    this.proc = spawn(toolBin, this.args,
      { env: { ...process.env, KW_ADMIN_PASSWORD: PASSWORD }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.sstTls = 0;
    this.ist = 0;
    this.proc.stderr.on('data', (d) => {
      const text = d.toString();
      // The SST scripts log how socat runs: "Encrypting/Decrypting with cert=…" (encrypt=3).
      this.sstTls += (text.match(/(Encrypting|Decrypting) with cert=/g) || []).length;
      this.ist += (text.match(/IST received|Receiving IST/g) || []).length;
      this.stderr = (this.stderr + text).slice(-40000);
    });
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => {
      const i = this.waiters.findIndex((w) => w.re.test(l));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(l); else this.lines.push(l);
    });
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
    return this.expect(/^ready$/, 240000);
  }
  expect(re, ms = 120000) {
    const i = this.lines.findIndex((l) => re.test(l));
    if (i >= 0) return Promise.resolve(this.lines.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`galera tool: no ${re} in ${ms} ms; stderr tail:\n${this.stderr.slice(-4000)}`)), ms);
      this.waiters.push({ re, resolve: (l) => { clearTimeout(t); resolve(l); } });
    });
  }
  command(cmd, re, ms) {
    const p = this.expect(re, ms);
    this.proc.stdin.write(cmd + '\n');
    return p;
  }
  async quit() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.stdin.write('quit\n');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 120000);
    await this.exited;
    clearTimeout(t);
  }
}

function connect(port) {
  return mysql.createConnection({ host: '127.0.0.1', port, user: 'admin', password: PASSWORD, connectTimeout: 3000 });
}

// Waits until the node answers and says it is Synced with the whole cluster.
async function synced(port, size, ms = 300000) {
  const deadline = Date.now() + ms;
  let last = 'not reachable';
  for (;;) {
    try {
      const c = await connect(port);
      const [rows] = await c.query("SHOW STATUS WHERE Variable_name IN ('wsrep_local_state_comment','wsrep_cluster_size')");
      const s = Object.fromEntries(rows.map((r) => [r.Variable_name, r.Value]));
      if (s.wsrep_local_state_comment === 'Synced' && Number(s.wsrep_cluster_size) === size) return c;
      last = JSON.stringify(s);
      await c.end();
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`node on ${port} not Synced in a cluster of ${size}: ${last}\n${tool.stderr.slice(-4000)}`);
    await sleep(500);
  }
}

async function waitRows(c, where, n, ms = 60000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const [[{ k }]] = await c.query(`SELECT COUNT(*) AS k FROM app.t WHERE ${where}`);
    if (Number(k) >= n) return Number(k);
    if (Date.now() > deadline) return Number(k);
    await sleep(200);
  }
}

let dir;
let tool;
let name;
const sqlPorts = [];

before(async () => {
  if (skip) return;
  dir = tempDir('kw-galera-');
  name = 'kwtest-' + makeCanary().slice(8, 20);
  const ports = [];
  for (let i = 0; i < NODES * 4; i++) {
    let p;
    do { p = await freePort(); } while (ports.includes(p));
    ports.push(p);
  }
  for (let i = 0; i < NODES; i++) sqlPorts.push(ports[4 * i]);
  tool = new Tool(dir, name, ports);
  await tool.start();
});

after(async () => {
  if (tool) await tool.quit();
  if (dir && !process.env.KEEP_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

test('three nodes: writes through any node read on the others; gcache only on /dev/shm', { skip, timeout: 600000 }, async () => {
  const t0 = Date.now();
  const conns = [];
  for (const p of sqlPorts) conns.push(await synced(p, NODES));
  // Causal reads and writes: a node first applies what the cluster committed before (the table
  // created through node 0 exists on node 1 before node 1 inserts into it).
  for (const c of conns) await c.query('SET SESSION wsrep_sync_wait = 7');
  console.log(`3 nodes Synced (2 by SST through mariabackup) in ${Date.now() - t0} ms; SST TLS log lines: ${tool.sstTls}`);
  assert.ok(tool.sstTls >= 2, 'the joiners\' SST did not run over TLS (no "Decrypting with cert=" line from the SST scripts)');
  await conns[0].query('CREATE DATABASE app');
  await conns[0].query('CREATE TABLE app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, node INT, tag CHAR(40))');
  for (let i = 0; i < NODES; i++) {
    await conns[i].query('INSERT INTO app.t (node, tag) VALUES (?, ?)', [i, `hello-${i}`]);
  }
  for (let i = 0; i < NODES; i++) {
    assert.equal(await waitRows(conns[i], "tag LIKE 'hello-%'", NODES), NODES, `node ${i} misses writes of the others`);
  }
  // Every node's tables are encrypted, with the same keys (SST copied encrypted pages).
  for (let i = 0; i < NODES; i++) {
    const [[{ n }]] = await conns[i].query("SELECT COUNT(*) AS n FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='app/t' AND ENCRYPTION_SCHEME=1");
    assert.equal(Number(n), 1, `app.t on node ${i} is not encrypted`);
    const [[ssl]] = await conns[i].query("SHOW VARIABLES LIKE 'wsrep_provider_options'");
    assert.match(ssl.Value, /socket\.ssl = YES/, `node ${i} replicates without TLS`);
  }
  for (const c of conns) await c.end();
  const shm = fs.readdirSync('/dev/shm').filter((f) => f.startsWith(name));
  assert.equal(shm.length, NODES, `gcache dirs on /dev/shm: ${shm}`);
  for (const d of shm) assert.ok(fs.existsSync(path.join('/dev/shm', d, 'galera.cache')), `no gcache in /dev/shm/${d}`);
  const onDisk = allFiles(dir).filter((f) => /galera\.cache|gcache\.page/.test(f));
  assert.deepEqual(onDisk, [], 'a gcache file on disk');
});

test('kill -9 of a node under write load: no acknowledged row lost, restarted node catches up', { skip, timeout: 600000 }, async () => {
  const victim = 2;
  const acked = [];
  let stop = false;
  const writer = async (i) => {
    let c;
    try { c = await connect(sqlPorts[i]); } catch { return; }
    while (!stop) {
      const tag = makeCanary();
      try {
        await c.query('INSERT INTO app.t (node, tag) VALUES (?, ?)', [i, tag]);
        acked.push(tag);
      } catch (e) {
        if (i === victim) break;  // its node is gone: what it acknowledged before counts
        await sleep(50);           // a survivor may refuse briefly while the view changes
      }
    }
    try { await c.end(); } catch { /* the node may be gone */ }
  };
  const writers = [0, 1, 2].map(writer);
  await sleep(LOAD_MS / 2);
  await tool.command(`kill ${victim}`, new RegExp(`^killed ${victim}$`));
  const killedAt = acked.length;
  // The survivors stall until Galera evicts the dead node (evs.suspect_timeout, 5 s by default):
  // keep the load on until they have taken writes again, so "under load" covers the new view.
  const until = Date.now() + 60000;
  await sleep(LOAD_MS / 2);
  while (acked.length < killedAt + 50 && Date.now() < until) await sleep(100);
  stop = true;
  await Promise.all(writers);
  console.log(`${acked.length} rows acknowledged (${killedAt} before the kill)`);
  assert.ok(acked.length > killedAt, 'the survivors took no writes after the kill');

  const check = async (i) => {
    const c = await synced(sqlPorts[i], i === victim ? NODES : NODES - 1);
    const [rows] = await c.query("SELECT tag FROM app.t WHERE tag LIKE 'KWCANARY%'");
    const have = new Set(rows.map((r) => r.tag));
    const lost = acked.filter((t) => !have.has(t));
    const [[sum]] = await c.query('CHECKSUM TABLE app.t');
    await c.end();
    assert.equal(lost.length, 0, `node ${i} lost ${lost.length} acknowledged rows, e.g. ${lost.slice(0, 3)}`);
    return String(sum.Checksum);
  };
  const survivors = [await check(0), await check(1)];
  const t0 = Date.now();
  await tool.command(`start ${victim}`, new RegExp(`^started ${victim} \\d+$`));
  const restarted = await check(victim);
  console.log(`node ${victim} back and Synced in ${Date.now() - t0} ms (IST log lines: ${tool.ist}, SST TLS log lines: ${tool.sstTls})`);
  assert.equal(survivors[0], survivors[1]);
  assert.equal(restarted, survivors[0], 'the restarted node differs from the survivors');
});
