// mariadbd never runs as root (issue 13): `keyward serve` as root runs each mariadb cluster's
// mariadbd as the unprivileged account (--mariadb-user, default keyward-mariadb). Shown from the
// outside: the process's ids in /proc, the cluster's files owned by the account, and — as that
// account (setpriv) — keyward's own files (escrow key, owner token, metadata, the cluster's key
// dictionary, a kv cluster's files) refused with EACCES while its own data dir opens; another
// user cannot even reach the key socket, and a process of the account that is not the mariadbd
// keyward started is closed without a key and logged. A missing account stops mariadb clusters
// only, naming the fix; kv clusters work. The REST API's TLS key never reaches the account: with
// an API certificate (no --cluster-tls-cert) each mariadb cluster's SQL port has its own
// certificate from its own CA, which the resource names (tls_ca_file) and mysql2 verifies.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { test } from 'node:test';
import mysql from 'mysql2/promise';
import { FakeKms, Server, fakeKmsBin, fakeServer, keywardBin, splitEndpoint, tempDir } from './harness.mjs';

const ACCOUNT = 'keyward-mariadb';
const PLUGIN_DIR = path.dirname(keywardBin);

function idsOf(name) {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function missing() {
  if (process.getuid() !== 0) return 'not root: mariadbd runs as keyward\'s own user then (nothing to drop)';
  if (!fs.existsSync('/usr/sbin/mariadbd')) return '/usr/sbin/mariadbd is not installed (apt-get install mariadb-server)';
  if (!fs.existsSync(path.join(PLUGIN_DIR, 'keyward_key_management.so'))) {
    return `keyward_key_management.so is not built in ${PLUGIN_DIR} (needs libmariadbd-dev)`;
  }
  if (!fs.existsSync('/usr/bin/setpriv')) return 'setpriv (util-linux) is missing';
  if (!idsOf(ACCOUNT)) return `the account ${ACCOUNT} does not exist (run scripts/bootstrap)`;
  if (spawnSync('sh', ['-c', 'command -v openssl']).status !== 0) return 'openssl is missing';
  return null;
}
const why = missing();
if (why) console.log(`SKIPPED LOUDLY: mariadb_user: ${why}`);

// Runs argv as `user` (no supplementary groups), like a process of that account would.
function asUser(user, argv) {
  const { uid, gid } = idsOf(user);
  return spawnSync('setpriv', ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--', ...argv],
    { encoding: 'utf8', timeout: 20000 });
}

function mariadbdPid(clusterDir) {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline;
    try { cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8'); } catch { continue; }
    const args = cmdline.split('\0');
    if (path.basename(args[0]) === 'mariadbd' && args.some((a) => a.startsWith(`--defaults-file=${clusterDir}/`))) {
      return Number(entry);
    }
  }
  return null;
}

async function cmekProject(server, fake, name) {
  const project = (await server.api('POST', '/api/v1/projects', { name, cmek_enabled: true })).json;
  const key = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys`,
    { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: `kv-${name}`, key_name_prefix: 'sql' } })).json;
  fake.createKey(key.key_name, { granted: true });
  const tested = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys/${key.id}:test`)).json;
  assert.equal(tested.state, 'active', JSON.stringify(tested));
  return project;
}

function createCluster(server, project, name, engine) {
  return server.api('POST', `/api/v1/projects/${project.id}/clusters`,
    { name, cloud_provider: 'azure', region: 'eastus', tier: 'dedicated', engine });
}

test('mariadbd runs as keyward-mariadb, which can reach its own files and none of keyward\'s', { skip: why ? `SKIPPED LOUDLY: ${why}` : false, timeout: 300000 }, async () => {
  const account = idsOf(ACCOUNT);
  const dir = tempDir('kw-sqluser-');
  const fake = new FakeKms(dir);
  const server = await fakeServer(dir, fake);
  server.env = { ...server.env, KEYWARD_MARIADB_PLUGIN_DIR: PLUGIN_DIR };
  await server.start();
  try {
    const project = await cmekProject(server, fake, 'sqluser');
    const kv = await createCluster(server, project, 'cache', 'kv');
    assert.equal(kv.status, 201, kv.text);
    const created = await createCluster(server, project, 'orders', 'mariadb');
    assert.equal(created.status, 201, created.text + '\n' + server.output.slice(-4000));
    const cluster = created.json;
    const clusterDir = path.join(dir, 'clusters', cluster.id);

    // The process: every uid and gid the account's, no supplementary group (root's or other).
    const pid = mariadbdPid(clusterDir);
    assert.ok(pid, 'mariadbd runs for the cluster');
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name) => status.match(new RegExp(`^${name}:[ \\t]*(.*)$`, 'm'))[1].trim().split(/\s+/).filter(Boolean);
    assert.deepEqual(field('Uid').map(Number), [account.uid, account.uid, account.uid, account.uid], status);
    assert.deepEqual(field('Gid').map(Number), [account.gid, account.gid, account.gid, account.gid], status);
    assert.deepEqual(field('Groups'), []);
    console.log(`mariadbd pid ${pid} runs as uid ${account.uid} gid ${account.gid} (${ACCOUNT}), no supplementary groups`);

    // It serves: rows in and out over TCP.
    const { host, port } = splitEndpoint(cluster.endpoint);
    const conn = await mysql.createConnection({ host, port, user: 'admin', password: cluster.password });
    await conn.query('CREATE DATABASE shop');
    await conn.query('CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(32))');
    await conn.query('INSERT INTO shop.t VALUES (1, "one"), (2, "two")');
    const [rows] = await conn.query('SELECT COUNT(*) AS n FROM shop.t');
    assert.equal(rows[0].n, 2);
    await conn.end();

    // Its directories are its own, 0700; the key socket's directory and socket keyward's.
    for (const sub of ['data', 'tmp', 'run/files']) {
      const st = fs.statSync(path.join(clusterDir, 'mariadb', sub));
      assert.equal(st.uid, account.uid, sub);
      assert.equal(st.mode & 0o7777, 0o700, sub);
    }
    const keysDir = fs.statSync(path.join(clusterDir, 'mariadb', 'keys'));
    assert.deepEqual([keysDir.uid, keysDir.gid, keysDir.mode & 0o7777], [0, account.gid, 0o710]);
    const sock = path.join(clusterDir, 'mariadb', 'keys', 'keys.sock');
    const sockSt = fs.statSync(sock);
    assert.deepEqual([sockSt.uid, sockSt.gid, sockSt.mode & 0o777], [0, account.gid, 0o660]);

    // As the account: its own data dir opens (the check is not vacuous)...
    const own = asUser(ACCOUNT, ['ls', path.join(clusterDir, 'mariadb', 'data')]);
    assert.equal(own.status, 0, own.stderr);
    assert.match(own.stdout, /ibdata1/);
    // ...keyward's files do not.
    const kvDir = path.join(dir, 'clusters', kv.json.id);
    const kvFile = fs.readdirSync(kvDir).map((f) => path.join(kvDir, f)).find((f) => fs.statSync(f).isFile());
    const forbidden = [
      path.join(dir, 'escrow.key'), path.join(dir, 'owner.token'), path.join(dir, 'metadata.db'),
      path.join(clusterDir, 'keys.dict'), kvFile,
    ];
    for (const f of forbidden) {
      assert.ok(fs.existsSync(f), `${f} exists`);
      const r = asUser(ACCOUNT, ['cat', f]);
      assert.notEqual(r.status, 0, `${ACCOUNT} read ${f}`);
      assert.match(r.stderr, /Permission denied/, `${f}: ${r.stderr}`);
    }
    for (const d of [dir, path.join(dir, 'clusters'), kvDir, clusterDir]) {
      const r = asUser(ACCOUNT, ['ls', d]);
      assert.notEqual(r.status, 0, `${ACCOUNT} listed ${d}`);
      assert.match(r.stderr, /Permission denied/, `${d}: ${r.stderr}`);
    }
    console.log(`as ${ACCOUNT}: EACCES on ${forbidden.length} files and 4 directories of keyward's; its data dir lists`);

    // The key socket: another user cannot reach it; a process of the account that is not the
    // supervised mariadbd connects but is closed without a key, and keyward logs it.
    const probe = `const s = require('net').connect(${JSON.stringify(sock)});
      let got = 0;
      s.on('error', (e) => { console.log(e.code); });
      s.on('connect', () => s.end(Buffer.concat([Buffer.from('KWK1'), Buffer.from([1,0,0,0, 1,0,0,0, 0,0,0,0])])));
      s.on('data', (d) => { got += d.length; });
      s.on('close', () => console.log('closed after ' + got + ' bytes'));`;
    const stranger = asUser('nobody', [process.execPath, '-e', probe]);
    assert.match(stranger.stdout, /EACCES/, stranger.stdout + stranger.stderr);
    const before = (server.output.match(/mariadb\.key_peer_refused/g) || []).length;
    const sameAccount = asUser(ACCOUNT, [process.execPath, '-e', probe]);
    assert.match(sameAccount.stdout, /closed after 0 bytes/, sameAccount.stdout + sameAccount.stderr);
    const deadline = Date.now() + 5000;
    while ((server.output.match(/mariadb\.key_peer_refused/g) || []).length === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok((server.output.match(/mariadb\.key_peer_refused/g) || []).length > before, 'the refused peer is logged');
    console.log('key socket: another user EACCES; the account\'s non-mariadbd process closed after 0 bytes, logged');

    // Pause and resume: started again as the account.
    let r = await server.api('POST', `/api/v1/clusters/${cluster.id}:pause`);
    assert.ok(r.status < 300, r.text);
    r = await server.api('POST', `/api/v1/clusters/${cluster.id}:resume`);
    assert.ok(r.status < 300, r.text);
    const deadline2 = Date.now() + 120000;
    let pid2 = null;
    while (Date.now() < deadline2) {
      const c = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json;
      pid2 = mariadbdPid(clusterDir);
      if (c.state === 'available' && pid2) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    assert.ok(pid2 && pid2 !== pid, 'a new mariadbd after resume');
    assert.match(fs.readFileSync(`/proc/${pid2}/status`, 'utf8'), new RegExp(`^Uid:\\s+${account.uid}\\s`, 'm'));
    const again = await mysql.createConnection({ host, port, user: 'admin', password: cluster.password });
    const [back] = await again.query('SELECT v FROM shop.t ORDER BY id');
    assert.deepEqual(back.map((x) => x.v), ['one', 'two']);
    await again.end();

    // Data an older keyward wrote while mariadbd ran as root: handed to the account at start.
    await server.stop();
    for (const sub of ['data', 'tmp']) {
      const r = spawnSync('chown', ['-R', '0:0', path.join(clusterDir, 'mariadb', sub)]);
      assert.equal(r.status, 0);
    }
    await server.start();
    const deadline3 = Date.now() + 120000;
    let state = null;
    while (Date.now() < deadline3) {
      state = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json;
      if (state.state === 'available') break;
      await new Promise((res) => setTimeout(res, 250));
    }
    assert.equal(state.state, 'available', JSON.stringify(state));
    const ibdata = fs.statSync(path.join(clusterDir, 'mariadb', 'data', 'ibdata1'));
    assert.equal(ibdata.uid, account.uid, 'root-owned data handed to the account');
    const third = await mysql.createConnection({ host, port, user: 'admin', password: cluster.password });
    const [kept] = await third.query('SELECT COUNT(*) AS n FROM shop.t');
    assert.equal(kept[0].n, 2);
    await third.end();
  } finally {
    await server.stop();
  }
});

// The base64 lines of a PEM private key (what a copy of it would contain).
function keyLines(pemFile) {
  return fs.readFileSync(pemFile, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'));
}

// Files under `dir` that contain any of `lines` (root finds them all: the account cannot list
// keyward's directories but may know a path), and those of them `user` can read.
function filesWith(user, dir, lines) {
  const r = spawnSync('grep', ['-rlF', ...lines.flatMap((l) => ['-e', l]), dir], { encoding: 'utf8' });
  const all = r.stdout.split('\n').filter(Boolean);
  return { all, readable: all.filter((f) => asUser(user, ['cat', f]).status === 0) };
}

// server.api over HTTPS trusting `ca` only (fetch has no per-request CA).
function httpsApi(server, ca) {
  return (method, urlPath, body) => new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(`${server.url}${urlPath}`, { method, ca,
      headers: { Authorization: `Bearer ${server.token}`, 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

test('mariadbd never gets the REST API\'s TLS key: its own certificate, whose CA the resource names', { skip: why ? `SKIPPED LOUDLY: ${why}` : false, timeout: 300000 }, async () => {
  const certDir = tempDir('kw-sqlcert-');
  const apiCert = path.join(certDir, 'api.pem');
  const apiKey = path.join(certDir, 'api.key');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', apiKey, '-out', apiCert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  fs.chmodSync(apiKey, 0o600);
  const dir = tempDir('kw-sqltls-');
  const fake = new FakeKms(dir);
  const server = new Server(dir, ['--tls-cert', apiCert, '--tls-key', apiKey], { bin: fakeKmsBin, env: fake.env, caFile: apiCert });
  server.env = { ...server.env, KEYWARD_MARIADB_PLUGIN_DIR: PLUGIN_DIR };
  await server.start();
  server.api = httpsApi(server, fs.readFileSync(apiCert));
  try {
    const project = await cmekProject(server, fake, 'sqltls');
    const created = await createCluster(server, project, 'billing', 'mariadb');
    assert.equal(created.status, 201, created.text + '\n' + server.output.slice(-4000));
    const cluster = created.json;
    assert.equal(cluster.tls, true);
    const caFile = cluster.tls_ca_file;
    assert.ok(caFile && caFile.startsWith(path.join(dir, 'clusters', cluster.id) + '/'), `tls_ca_file: ${caFile}`);
    assert.ok(cluster.connect.endsWith(`--ssl --ssl-verify-server-cert --ssl-ca ${caFile}`), cluster.connect);

    // No file the account can read under the data dir holds the API's key; the scan reaches the
    // copies mariadbd reads (its own SQL key is found there: not vacuous).
    const api = filesWith(ACCOUNT, dir, keyLines(apiKey));
    assert.deepEqual(api.readable, [], 'the API key is readable by the account');
    const ownKey = path.join(dir, 'clusters', cluster.id, 'mariadb', 'sql-tls', 'server.key');
    const own = filesWith(ACCOUNT, dir, keyLines(ownKey));
    const ownCopies = own.readable;
    assert.ok(ownCopies.some((f) => f.endsWith('/run/tls-key.pem')), `own SQL key copies: ${ownCopies}`);
    assert.ok(!ownCopies.includes(ownKey), 'the original stays keyward\'s');
    // The cluster's CA key stays keyward's.
    const caKey = fs.statSync(path.join(path.dirname(caFile), 'ca.key'));
    assert.deepEqual([caKey.uid, caKey.mode & 0o777], [0, 0o600]);
    console.log(`as ${ACCOUNT}: API key in ${api.all.length} files under the data dir, 0 readable; own SQL key in ${ownCopies.length} (${ownCopies.map((f) => path.basename(f))})`);

    // A verifying TLS client trusting the CA the resource names connects; trusting only the
    // API's certificate it is refused (the SQL port no longer presents the API's certificate).
    const { host, port } = splitEndpoint(cluster.endpoint);
    const conn = await mysql.createConnection({ host, port, user: 'admin', password: cluster.password,
      ssl: { ca: fs.readFileSync(caFile), rejectUnauthorized: true } });
    const [rows] = await conn.query("SHOW STATUS LIKE 'Ssl_cipher'");
    assert.ok(rows[0].Value, 'the session is encrypted');
    await conn.end();
    await assert.rejects(mysql.createConnection({ host, port, user: 'admin', password: cluster.password,
      ssl: { ca: fs.readFileSync(apiCert), rejectUnauthorized: true } }), /certificate|self.signed|verify/i);
    console.log(`mysql2 verifying with ${path.basename(caFile)} connected (${rows[0].Value}); with the API certificate refused`);
  } finally {
    await server.stop();
  }
});

test('a missing account stops mariadb clusters only, naming the fix', { skip: why ? `SKIPPED LOUDLY: ${why}` : false, timeout: 120000 }, async () => {
  const dir = tempDir('kw-sqlnouser-');
  const fake = new FakeKms(dir);
  const server = await fakeServer(dir, fake, ['--mariadb-user', 'keyward-no-such-account']);
  server.env = { ...server.env, KEYWARD_MARIADB_PLUGIN_DIR: PLUGIN_DIR };
  await server.start();
  try {
    assert.match(server.output, /mariadb clusters cannot start: the OS user 'keyward-no-such-account'/);
    const project = await cmekProject(server, fake, 'nouser');
    const kv = await createCluster(server, project, 'cache', 'kv');
    assert.equal(kv.status, 201, kv.text);
    const sql = await createCluster(server, project, 'orders', 'mariadb');
    assert.notEqual(sql.status, 201, sql.text);
    assert.match(sql.text, /keyward-no-such-account/);
    assert.match(sql.text, /useradd --system/);
    console.log(`mariadb cluster refused (${sql.status}): ${sql.text.slice(0, 300)}`);
  } finally {
    await server.stop();
  }
});
