// Backups over a cluster's life (issue 9): `cluster delete` says what happens to the cluster's
// backups and deletes them too on request (CLI --with-backups, REST ?with_backups=true), and
// kill -9 during a restore never leaves a half-restored cluster `available` nor a staging
// directory behind. KEYWARD_RESTORE_KILL_ROUNDS (default 3; ≥ 10 for the full run).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { cliJson, compareAll as compareValues, connect } from './backup_data.mjs';
import { Server, sleep, tempDir } from './harness.mjs';

const KILL_ROUNDS = Number(process.env.KEYWARD_RESTORE_KILL_ROUNDS || 3);

async function fill(cluster, count, maxSize) {
  const redis = await connect(cluster);
  const values = [];
  for (let i = 0; i < count; i++) {
    values.push(crypto.randomBytes(Math.ceil((16 + Math.floor(Math.random() * maxSize)) / 2)).toString('hex'));
  }
  for (let i = 0; i < count; i += 200) {
    const p = redis.pipeline();
    for (let j = i; j < Math.min(count, i + 200); j++) p.set(`k:${j}`, values[j]);
    for (const [err] of await p.exec()) assert.equal(err, null);
  }
  await redis.quit();
  return values;
}

async function compareAll(cluster, values) {
  const redis = await connect(cluster);
  try {
    await compareValues(redis, values);
  } finally {
    await redis.quit();
  }
}

async function backupNow(server, clusterId) {
  const r = cliJson(server, ['backup', 'create', clusterId, '--wait']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.state, 'completed', r.stdout);
  return r.json;
}

function backupObjects(dir, id) {
  return fs.existsSync(path.join(dir, 'backups', id));
}

test('cluster delete keeps the backups and says so; --with-backups (CLI) and ?with_backups=true (REST) delete them too', async () => {
  const dir = tempDir();
  const server = await new Server(dir).start();
  try {
    // Kept: the answer says how many, until when, and that only the key reads them.
    const kept = server.createCluster('kept');
    await fill(kept, 50, 200);
    const policy = server.cli(['cluster', 'backup-policy', kept.id, '--schedule', 'daily', '--retention-days', '3']);
    assert.equal(policy.code, 0, policy.stderr);
    const b1 = await backupNow(server, kept.id);
    const b2 = await backupNow(server, kept.id);
    const del = server.cli(['cluster', 'delete', kept.id, '--yes']);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /its 2 backups are kept until their retention ends \(3 days/);
    assert.match(del.stdout, /readable only through that key/);
    assert.match(del.stdout, /--with-backups/);
    for (const b of [b1, b2]) {
      const got = await server.api('GET', `/api/v1/backups/${b.id}`);
      assert.equal(got.status, 200, got.text);
      assert.ok(backupObjects(dir, b.id), `backup ${b.id}'s objects are gone`);
    }
    // … and a deleted cluster comes back from them.
    const back = cliJson(server, ['backup', 'restore', b2.id, '--name', 'kept-back']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.json.state, 'available');

    // CLI --with-backups.
    const gone = server.createCluster('gone-cli');
    const b3 = await backupNow(server, gone.id);
    const del2 = cliJson(server, ['cluster', 'delete', gone.id, '--with-backups', '--yes']);
    assert.equal(del2.code, 0, del2.stderr);
    assert.equal(del2.json.state, 'deleted');
    assert.deepEqual(del2.json.backups, { kept: 0, deleted: 1, message: 'its 1 backup was deleted with it' });
    assert.equal((await server.api('GET', `/api/v1/backups/${b3.id}`)).status, 404);
    assert.ok(!backupObjects(dir, b3.id), 'a deleted backup left objects');
    const del2Text = server.cli(['cluster', 'delete', server.createCluster('none').id, '--yes']);
    assert.match(del2Text.stdout, /it had no backups/);

    // REST ?with_backups=true, and a bad value refused with nothing deleted.
    const rest = server.createCluster('gone-rest');
    const b4 = await backupNow(server, rest.id);
    const bad = await server.api('DELETE', `/api/v1/clusters/${rest.id}?with_backups=yes`);
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.json.error.message ?? bad.text, /with_backups must be true or false/);
    assert.equal((await server.api('GET', `/api/v1/clusters/${rest.id}`)).json.state, 'available');
    const kept2 = await server.api('DELETE', `/api/v1/clusters/${rest.id}?with_backups=true`);
    assert.equal(kept2.status, 200, kept2.text);
    assert.equal(kept2.json.backups.deleted, 1);
    assert.equal((await server.api('GET', `/api/v1/backups/${b4.id}`)).status, 404);
    assert.ok(!backupObjects(dir, b4.id));
    const audit = await server.api('GET', `/api/v1/projects/${rest.project_id}/audit-events?page_size=500`);
    const events = audit.json?.items ?? [];
    assert.ok(events.some((e) => e.action === 'backup.delete' && e.target === b4.id), 'the deletion was not audited');
  } finally {
    await server.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(`kill -9 during a restore never leaves a half-restored cluster available (${KILL_ROUNDS} rounds)`, async () => {
  const dir = tempDir();
  const server = await new Server(dir).start();
  try {
    const source = server.createCluster('restore-src');
    const values = await fill(source, 2000, 16384);
    const backup = await backupNow(server, source.id);
    // How long one restore takes here, so the kills land during one.
    const t0 = Date.now();
    const timed = await server.api('POST', `/api/v1/backups/${backup.id}:restore`, { name: 'timed' });
    assert.equal(timed.status, 201, timed.text);
    const duration = Math.max(20, Date.now() - t0);
    let killedDuring = 0;
    let stagingAtKill = 0;  // kills with a staging directory in place (the restore mid-way)
    let finishedUnanswered = 0;  // restores that completed with their answer lost to the kill
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const name = `killed-${round}`;
      const pending = server.api('POST', `/api/v1/backups/${backup.id}:restore`, { name }).catch(() => null);
      // Random points, stratified over the restore's time so every run covers early and late.
      await sleep(Math.floor(((round % 3) + Math.random()) / 3 * duration));
      const clustersDir = path.join(dir, 'clusters');
      if (fs.readdirSync(clustersDir).some((n) => n.startsWith('.restore-'))) stagingAtKill++;
      await server.stop('SIGKILL');
      const answered = await pending;
      if (!answered || answered.status !== 201) killedDuring++;
      await server.start();
      const clusters = (await server.api('GET', '/api/v1/clusters?page_size=500')).json.items;
      for (const c of clusters.filter((x) => x.name === name)) {
        assert.notEqual(c.state, 'creating', `cluster ${c.id} is still creating after a restart`);
        if (c.state === 'available') {
          // Only a restore that finished before the kill may be available: answered, or killed
          // between its commit and the answer (its record is written only after every chunk was
          // verified and the directory moved into place; seen once under TSan's slower timing).
          if (!answered || answered.status !== 201) finishedUnanswered++;
        } else {
          assert.equal(c.state, 'failed', `${c.id}: ${c.state}`);
          assert.match(c.state_message ?? JSON.stringify(c), /interrupted by a server restart/);
        }
      }
      const staging = fs.readdirSync(path.join(dir, 'clusters')).filter((n) => n.startsWith('.restore-'));
      assert.deepEqual(staging, [], 'a restore staging directory outlived the restart');
    }
    console.log(`${killedDuring} of ${KILL_ROUNDS} kills landed during the restore, ${stagingAtKill} with its staging directory in place, ${finishedUnanswered} after its commit but before its answer (one takes ${duration} ms)`);
    if (KILL_ROUNDS >= 3) assert.ok(killedDuring >= 1, 'no kill landed during a restore: the test did not test');
    // A restore afterwards works, every key and value back.
    const after = cliJson(server, ['backup', 'restore', backup.id, '--name', 'after-kills']);
    assert.equal(after.code, 0, after.stderr);
    assert.equal(after.json.state, 'available');
    await compareAll(after.json, values);
  } finally {
    await server.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
