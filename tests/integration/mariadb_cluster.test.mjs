// `--engine mariadb` clusters through `keyward serve` (fake-KMS build): a CMEK cluster served by
// a mariadbd keyward starts and supervises, reached with mysql2 and the `mariadb` CLI; pause
// (the process is gone), a disabled key refusing resume by name, the key monitor cutting the
// cluster while a client writes (nothing acknowledged lost), and kill -9 of mariadbd under write
// load (keyward restarts it; every committed row survives InnoDB's recovery through the plugin).
//
// Env: MARIADB_CRASH_ROUNDS (default 3; the acceptance run uses 10).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FakeKms, fakeServer, sleep, splitEndpoint, tempDir } from './harness.mjs';
import {
  cmekSetup, connectSql, mariadbdPids, missingMariadb, PLUGIN_DIR, waitFor, waitForState,
} from './mariadb_util.mjs';

const INTERVAL_S = 2;
const CRASH_ROUNDS = Number(process.env.MARIADB_CRASH_ROUNDS || 3);
const why = missingMariadb();
if (why) console.log(`SKIPPED LOUDLY: mariadb_cluster: ${why}`);

function connect(endpoint, password) {
  return connectSql(endpoint, password);
}

async function createSqlCluster(server, project, name) {
  const r = await server.api('POST', `/api/v1/projects/${project.id}/clusters`,
    { name, cloud_provider: 'azure', region: 'eastus', tier: 'dedicated', engine: 'mariadb' });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

// Inserts rows one autocommit statement at a time until stopped; the ids the server acknowledged
// are the ones that must survive.
function startWriter(endpoint, password, table) {
  const acked = [];
  let stop = false;
  let next = 0;
  let errors = 0;
  const done = (async () => {
    let conn = null;
    while (!stop) {
      try {
        if (!conn) conn = await connect(endpoint, password);
        const id = ++next;
        await conn.query(`INSERT INTO ${table} (id, v) VALUES (?, ?)`, [id, `row-${id}`]);
        acked.push(id);
      } catch {
        errors++;
        try { await conn?.destroy(); } catch { /* gone already */ }
        conn = null;
        await sleep(100);
      }
    }
    try { await conn?.end(); } catch { /* gone already */ }
  })();
  return { acked, errors: () => errors, stop: async () => { stop = true; await done; } };
}

async function assertRows(endpoint, password, table, ids) {
  const conn = await connect(endpoint, password);
  try {
    const [rows] = await conn.query(`SELECT id, v FROM ${table}`);
    const have = new Map(rows.map((r) => [r.id, r.v]));
    const lost = ids.filter((id) => have.get(id) !== `row-${id}`);
    assert.equal(lost.length, 0, `${lost.length} acknowledged rows lost, e.g. ${lost.slice(0, 10)}`);
  } finally {
    await conn.end();
  }
}

test('mariadb cluster: create, rows, pause (process gone), disabled key refuses resume by name, monitor cut while writing', { skip: why ? `SKIPPED LOUDLY: ${why}` : false, timeout: 600000 }, async () => {
  const dir = tempDir('kw-sql-');
  const fake = new FakeKms(dir);
  const server = await fakeServer(dir, fake, ['--key-check-interval', String(INTERVAL_S)]);
  server.env = { ...server.env, KEYWARD_MARIADB_PLUGIN_DIR: PLUGIN_DIR };
  await server.start();
  try {
    const { project, key } = await cmekSetup(server, fake, 'sql');
    // A bad engine is a 400 naming the engines.
    const bad = await server.api('POST', `/api/v1/projects/${project.id}/clusters`,
      { name: 'pg', cloud_provider: 'azure', region: 'eastus', tier: 'dedicated', engine: 'postgres' });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.text, /engine must be kv .* or mariadb .*not 'postgres'/);

    const t0 = Date.now();
    const cluster = await createSqlCluster(server, project, 'orders');
    console.log(`mariadb cluster created in ${Date.now() - t0} ms`);
    assert.equal(cluster.engine, 'mariadb');
    assert.equal(cluster.state, 'available');
    assert.equal(cluster.encryption_key_id, key.id);
    const { host, port } = splitEndpoint(cluster.endpoint);
    assert.equal(cluster.connect, `mariadb -h ${host} -P ${port} -u admin -p`);
    const clusterDir = path.join(dir, 'clusters', cluster.id);
    assert.ok(fs.existsSync(path.join(clusterDir, 'keys.dict')), 'the key dictionary is in the cluster directory');
    const listed = (await server.api('GET', `/api/v1/projects/${project.id}/clusters`)).json;
    assert.equal(listed.items.find((c) => c.id === cluster.id).engine, 'mariadb');
    const cliList = server.cli(['cluster', 'list', '--project', project.id]);
    assert.match(cliList.stdout, /ENGINE/);
    assert.match(cliList.stdout, new RegExp(`${cluster.id}.*mariadb`));

    // Rows in through mysql2; read back through the mariadb CLI.
    let conn = await connect(cluster.endpoint, cluster.password);
    await conn.query('CREATE DATABASE shop');
    await conn.query('CREATE TABLE shop.orders (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB');
    const ids = Array.from({ length: 500 }, (_, i) => i + 1);
    await conn.query('INSERT INTO shop.orders (id, v) VALUES ?', [ids.map((id) => [id, `row-${id}`])]);
    await conn.end();
    const cli = spawnSync('mariadb', ['-h', host, '-P', String(port), '-u', 'admin', `-p${cluster.password}`,
      '--batch', '--skip-column-names', '-e', 'SELECT COUNT(*) FROM shop.orders'], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(cli.stdout.trim(), '500');
    const wrongPassword = spawnSync('mariadb', ['-h', host, '-P', String(port), '-u', 'admin', '-pnot-the-password', '-e', 'SELECT 1'], { encoding: 'utf8' });
    assert.notEqual(wrongPassword.status, 0, 'a wrong password is refused');

    // Pause: mariadbd shut down and gone.
    const [pid] = mariadbdPids(clusterDir);
    assert.ok(pid, 'mariadbd runs for the cluster');
    const paused = await server.api('POST', `/api/v1/clusters/${cluster.id}:pause`);
    assert.equal(paused.status, 200, paused.text);
    assert.equal(paused.json.state, 'paused');
    assert.equal(fs.existsSync(`/proc/${pid}`), false, `mariadbd (pid ${pid}) still exists after pause`);
    assert.deepEqual(mariadbdPids(clusterDir), []);
    assert.match(server.output, /mariadbd\.log.*Shutdown complete/s, 'mariadbd shut down cleanly, its log forwarded');

    // Disabled key: resume refused naming the key; the cluster stays paused, nothing started.
    fake.update(key.key_name, { enabled: false });
    const refused = await server.api('POST', `/api/v1/clusters/${cluster.id}:resume`);
    assert.equal(refused.status, 409, refused.text);
    assert.match(refused.text, new RegExp(`key '${key.key_name}'.*stays paused`));
    assert.deepEqual(mariadbdPids(clusterDir), []);
    fake.update(key.key_name, { enabled: true });
    const resumed = await server.api('POST', `/api/v1/clusters/${cluster.id}:resume`);
    assert.equal(resumed.status, 200, resumed.text);
    assert.equal(resumed.json.state, 'available');
    assert.equal(resumed.json.endpoint, cluster.endpoint, 'the endpoint keeps its port');
    await assertRows(cluster.endpoint, cluster.password, 'shop.orders', ids);

    // The key monitor: disable while a client writes → inaccessible within the interval,
    // mariadbd shut down; enable → available, every acknowledged row there.
    conn = await connect(cluster.endpoint, cluster.password);
    await conn.query('CREATE TABLE shop.events (id INT PRIMARY KEY, v VARCHAR(64))');
    await conn.end();
    const writer = startWriter(cluster.endpoint, cluster.password, 'shop.events');
    await waitFor('the writer to commit rows', 30000, () => writer.acked.length >= 20);
    const cutAt = Date.now();
    fake.update(key.key_name, { enabled: false });
    const cut = await waitForState(server, cluster.id, 'inaccessible', (INTERVAL_S + 20) * 1000);
    console.log(`inaccessible ${Date.now() - cutAt} ms after the key was disabled (interval ${INTERVAL_S} s)`);
    assert.equal(cut.state_cause, 'key');
    assert.match(cut.state_message, new RegExp(key.key_name));
    assert.deepEqual(mariadbdPids(clusterDir), [], 'mariadbd is shut down while the key is unusable');
    await sleep(500);
    await writer.stop();
    const acked = writer.acked.slice();
    console.log(`writer: ${acked.length} rows acknowledged, ${writer.errors()} failed attempts`);
    fake.update(key.key_name, { enabled: true });
    const back = await waitForState(server, cluster.id, 'available', (INTERVAL_S + 60) * 1000);
    assert.equal(back.endpoint, cluster.endpoint);
    await assertRows(cluster.endpoint, cluster.password, 'shop.events', acked);
    await assertRows(cluster.endpoint, cluster.password, 'shop.orders', ids);

    // Delete: crypto-shredded, the process gone with it.
    const deleted = await server.api('DELETE', `/api/v1/clusters/${cluster.id}`);
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal(deleted.json.state, 'deleted');
    assert.equal(fs.existsSync(clusterDir), false);
    assert.deepEqual(mariadbdPids(clusterDir), []);
  } catch (e) {
    console.log(`keyward serve output (tail):\n${server.output.slice(-8000)}`);
    throw e;
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(`mariadb cluster: kill -9 of mariadbd under write load, ${CRASH_ROUNDS} rounds: restarted, every committed row present`, { skip: why ? `SKIPPED LOUDLY: ${why}` : false, timeout: 900000 }, async () => {
  const dir = tempDir('kw-sql-crash-');
  const fake = new FakeKms(dir);
  const server = fakeServer(dir, fake);
  server.env = { ...server.env, KEYWARD_MARIADB_PLUGIN_DIR: PLUGIN_DIR };
  await server.start();
  try {
    const { project } = await cmekSetup(server, fake, 'crash');
    const cluster = await createSqlCluster(server, project, 'ledger');
    const clusterDir = path.join(dir, 'clusters', cluster.id);
    const conn = await connect(cluster.endpoint, cluster.password);
    await conn.query('CREATE DATABASE bank');
    await conn.query('CREATE TABLE bank.ledger (id INT PRIMARY KEY, v VARCHAR(64))');
    await conn.end();
    const writer = startWriter(cluster.endpoint, cluster.password, 'bank.ledger');
    let pid = (await waitFor('mariadbd', 10000, () => mariadbdPids(clusterDir)[0]));
    for (let round = 1; round <= CRASH_ROUNDS; round++) {
      // Under load: the writer commits for a while (past the supervisor's 5 s "stable" mark, so
      // these are separate crashes, not a crash loop), then mariadbd dies without warning.
      const before = writer.acked.length;
      await waitFor(`round ${round}: writes to go through`, 60000, () => writer.acked.length >= before + 20);
      await sleep(5000);
      process.kill(pid, 'SIGKILL');
      const killedAt = Date.now();
      const next = await waitFor(`round ${round}: a new mariadbd`, 60000, () => mariadbdPids(clusterDir).find((p) => p !== pid));
      const ackedAtKill = writer.acked.length;
      await waitFor(`round ${round}: writes after the restart`, 120000, () => writer.acked.length > ackedAtKill);
      console.log(`round ${round}: pid ${pid} killed, ${next} serving ${Date.now() - killedAt} ms later; ${writer.acked.length} rows acknowledged so far`);
      pid = next;
    }
    await writer.stop();
    await assertRows(cluster.endpoint, cluster.password, 'bank.ledger', writer.acked);
    const c = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json;
    assert.equal(c.state, 'available');
    assert.equal((server.output.match(/mariadbd\.crashed/g) || []).length, CRASH_ROUNDS, 'each crash logged once');
    const metrics = await server.api('GET', '/metrics');
    assert.match(metrics.text, new RegExp(`keyward_supervised_process_restarts_total\\{process="mariadbd"\\} ${CRASH_ROUNDS}`));
  } catch (e) {
    console.log(`keyward serve output (tail):\n${server.output.slice(-8000)}`);
    throw e;
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('mariadb cluster across server restarts: SIGTERM stops mariadbd cleanly and the next server starts it; a mariadbd left by a killed server is stopped first', { skip: why ? `SKIPPED LOUDLY: ${why}` : false, timeout: 600000 }, async () => {
  const dir = tempDir('kw-sql-restart-');
  const fake = new FakeKms(dir);
  const env = { ...fake.env, KEYWARD_MARIADB_PLUGIN_DIR: PLUGIN_DIR };
  let server = fakeServer(dir, fake);
  server.env = env;
  await server.start();
  try {
    const { project } = await cmekSetup(server, fake, 'restart');
    // Through the CLI this time: it prints the mariadb connect command, not redis-cli.
    const made = server.cli(['cluster', 'create', '--project', project.id, '--name', 'books', '--cloud', 'azure',
      '--region', 'eastus', '--tier', 'dedicated', '--engine', 'mariadb']);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /engine mariadb/);
    assert.match(made.stdout, /connect: +mariadb -h 127\.0\.0\.1 -P \d+ -u admin -p/);
    assert.doesNotMatch(made.stdout, /redis-cli/);
    const password = /password: (\S+)/.exec(made.stdout)[1];
    const id = /cluster (c-[0-9a-f]+)/.exec(made.stdout)[1];
    const cluster = (await server.api('GET', `/api/v1/clusters/${id}`)).json;
    const clusterDir = path.join(dir, 'clusters', id);
    const shown = server.cli(['cluster', 'get', id]);
    assert.match(shown.stdout, new RegExp(`connect: ${cluster.connect.replace(/[.]/g, '\\.')}`));
    let conn = await connect(cluster.endpoint, password);
    await conn.query('CREATE DATABASE lib');
    await conn.query('CREATE TABLE lib.books (id INT PRIMARY KEY, v VARCHAR(64))');
    const ids = Array.from({ length: 200 }, (_, i) => i + 1);
    await conn.query('INSERT INTO lib.books (id, v) VALUES ?', [ids.map((i) => [i, `row-${i}`])]);
    await conn.end();

    // SIGTERM: keyward shuts mariadbd down cleanly before it exits.
    const [before] = mariadbdPids(clusterDir);
    assert.deepEqual(await server.stop(), { code: 0, signal: null });
    assert.equal(fs.existsSync(`/proc/${before}`), false, 'mariadbd outlived keyward');
    assert.match(server.output, /mariadbd\.log.*Shutdown complete/s);
    server = fakeServer(dir, fake);
    server.env = env;
    await server.start();
    let c = await waitForState(server, id, 'available', 60000);
    assert.equal(c.endpoint, cluster.endpoint, 'same port after a restart');
    await assertRows(c.endpoint, password, 'lib.books', ids);

    // SIGKILL: keyward cannot stop mariadbd itself, so the kernel does (PR_SET_PDEATHSIG): the
    // orphan gets SIGTERM and shuts down cleanly on its own, so it never serves on cached keys
    // without keyward. (One still there when the next keyward starts is stopped first:
    // mariadbd.leftover in the log.)
    const [orphan] = mariadbdPids(clusterDir);
    await server.stop('SIGKILL');
    await waitFor('the orphaned mariadbd to shut itself down', 60000, () => {
      try {
        return !fs.readFileSync(`/proc/${orphan}/cmdline`, 'utf8').includes(clusterDir);
      } catch {
        return true;  // gone
      }
    });
    server = fakeServer(dir, fake);
    server.env = env;
    await server.start();
    c = await waitForState(server, id, 'available', 120000);
    const pids = mariadbdPids(clusterDir);
    assert.equal(pids.length, 1, `one mariadbd for the cluster, not ${pids}`);
    await assertRows(c.endpoint, password, 'lib.books', ids);
  } catch (e) {
    console.log(`keyward serve output (tail):\n${server.output.slice(-8000)}`);
    throw e;
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
