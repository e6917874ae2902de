// The customer's key governs every running cluster: the product `keyward serve` against the
// emulator, the customer's side played with the official Azure SDK and ARM calls. The monitor
// runs every 2 s here (--key-check-interval 2) with an 8 s grace for transient trouble.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ClientSecretCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import Redis from 'ioredis';
import { Emulator, ROLE_CRYPTO_OFFICER, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER } from './emulator.mjs';
import { Server, splitEndpoint, tempDir, sleep } from '../integration/harness.mjs';

const INTERVAL_S = 2;
const GRACE_S = 8;
const emu = new Emulator();
let admin;
let app;
let server;

function keywardArgs() {
  return ['--azure-tenant-id', app.tenant_id, '--azure-client-id', app.client_id, '--azure-app-name', 'keyward-health',
    '--azure-authority-host', emu.info.authority_host, '--azure-management-host', emu.info.management_host,
    '--azure-vault-url-template', emu.info.vault_url_template, '--azure-connect-to', emu.info.connect_to,
    '--azure-ca-file', emu.info.ca_file,
    '--key-check-interval', String(INTERVAL_S), '--key-loss-grace', String(GRACE_S)];
}

function keyClient(vault) {
  const cred = new ClientSecretCredential(admin.tenant_id, admin.client_id, admin.client_secret,
    { authorityHost: emu.info.authority_host, disableInstanceDiscovery: true });
  return new KeyClient(emu.vaultUrl(vault), cred, { serviceVersion: '7.4', disableChallengeResourceVerification: true });
}

function cli(args) {
  const r = server.cli(args);
  return { ...r, json: (() => { try { return JSON.parse(r.stdout); } catch { return null; } })() };
}
const getCluster = (id) => cli(['cluster', 'get', id, '--output', 'json']).json;

// A CMEK project with an active Azure key in its own vault; returns what the test needs.
async function setupKey(name, region = 'eastus') {
  const project = cli(['project', 'create', '--name', name, '--cmek', '--output', 'json']).json;
  const vault = `kv-${name}`.slice(0, 24);
  const key = cli(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', region,
    '--key-vault-name', vault, '--key-name-prefix', 'cmek', '--subscription-id', 'sub-1', '--resource-group', 'rg-1', '--output', 'json']).json;
  const scope = await emu.createVault(admin, { name: vault, location: region, subscription: 'sub-1', resourceGroup: 'rg-1' });
  await emu.assignRole(admin, scope, ROLE_CRYPTO_OFFICER, admin.object_id);
  await keyClient(vault).createRsaKey(key.key_name, { keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] });
  const keyScope = `${scope}/keys/${key.key_name}`;
  const roleId = await emu.assignRole(admin, keyScope, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER, app.object_id);
  const t = cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']).json;
  assert.equal(t.state, 'active', JSON.stringify(t.checks));
  return { project, key, vault, keyScope, roleId, kc: keyClient(vault), region };
}

function createCluster(k, name) {
  const c = cli(['cluster', 'create', '--project', k.project.id, '--name', name, '--cloud', 'azure', '--region', k.region,
    '--tier', 'dedicated', '--output', 'json']);
  assert.equal(c.code, 0, c.stderr);
  return c.json;
}

async function waitForState(id, state, withinMs) {
  const start = Date.now();
  let c;
  while (Date.now() - start < withinMs) {
    c = getCluster(id);
    if (c.state === state) return { cluster: c, ms: Date.now() - start };
    await sleep(200);
  }
  assert.fail(`cluster ${id} is ${c.state} (${c.state_message}), not ${state}, after ${withinMs} ms`);
}

// Writes SET w:i i one at a time until told to stop; counts what was acknowledged.
// ioredis's ready check sends INFO, which a sealed endpoint refuses: skip it so a client can
// (re)connect to a cut cluster and read the error of each command.
const redisOptions = (port, password) => ({ host: '127.0.0.1', port, password, maxRetriesPerRequest: 0,
  enableOfflineQueue: false, enableReadyCheck: false, retryStrategy: () => 200, lazyConnect: true });

async function startWriter(port, password) {
  const redis = new Redis(redisOptions(port, password));
  redis.on('error', () => {});
  await redis.connect();
  const w = { acked: [], errors: [], stop: false };
  w.done = (async () => {
    for (let i = 0; !w.stop; i++) {
      try {
        if ((await redis.set(`w:${i}`, String(i))) === 'OK') w.acked.push(i);
      } catch (e) {
        w.errors.push(String(e.message));
        await sleep(50);
      }
    }
    redis.disconnect();
  })();
  return w;
}

async function readBack(port, password, keys) {
  const redis = new Redis({ host: '127.0.0.1', port, password, lazyConnect: true });
  await redis.connect();
  const missing = [];
  for (let i = 0; i < keys.length; i += 500) {
    const chunk = keys.slice(i, i + 500);
    const values = await redis.mget(chunk.map((k) => `w:${k}`));
    values.forEach((v, j) => { if (v !== String(chunk[j])) missing.push(chunk[j]); });
  }
  redis.disconnect();
  return missing;
}

before(async () => {
  await emu.start(process.env.KEYWARD_EMULATOR_STATE_DIR);
  admin = await emu.principal('customer-admin');
  app = await emu.principal('keyward-app');
  server = new Server(tempDir(), keywardArgs(), { env: { AZURE_CLIENT_SECRET: app.client_secret } });
  await server.start();
});
after(async () => { await server?.stop('SIGKILL'); await emu.stop(); });

// Cuts the key three ways a customer can; each time the running cluster goes inaccessible within
// one interval + 5 s with writers attached, comes back by itself, and loses no acknowledged write.
for (const [label, cut, restore] of [
  ['key disabled in Key Vault',
    async (k) => { await k.kc.updateKeyProperties(k.key.key_name, { enabled: false }); },
    async (k) => { await k.kc.updateKeyProperties(k.key.key_name, { enabled: true }); }],
  ['role assignment removed',
    async (k) => { await emu.removeRole(admin, k.keyScope, k.roleId); },
    async (k) => { k.roleId = await emu.assignRole(admin, k.keyScope, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER, app.object_id); }],
  ['key deleted (soft delete), then recovered',
    async (k) => { await (await k.kc.beginDeleteKey(k.key.key_name)).pollUntilDone(); },
    async (k) => { await (await k.kc.beginRecoverDeletedKey(k.key.key_name)).pollUntilDone(); }],
]) {
  test(`revocation within one interval: ${label}`, async () => {
    const name = `rv-${crypto.randomBytes(3).toString('hex')}`;
    const k = await setupKey(name);
    const c = createCluster(k, 'live');
    const { port } = splitEndpoint(c.endpoint);
    const writer = await startWriter(port, c.password);
    await sleep(1000);
    assert.ok(writer.acked.length > 0, 'the writer made progress');
    await cut(k);
    const cutAt = Date.now();
    const { cluster: dead, ms } = await waitForState(c.id, 'inaccessible', (INTERVAL_S + 5) * 1000);
    console.log(`${label}: inaccessible ${ms} ms after the cut (interval ${INTERVAL_S} s)`);
    assert.match(dead.state_message, new RegExp(k.key.key_name));
    assert.equal(dead.encryption.key_name, k.key.key_name);
    assert.ok(dead.encryption.last_key_check_error.length > 0);
    assert.equal(cli(['key', 'get', '--project', k.project.id, k.key.id, '--output', 'json']).json.state, 'failed');
    // Clients get an error that names the key and says what happened.
    await sleep(500);
    const probe = new Redis(redisOptions(port, c.password));
    probe.on('error', () => {});
    await probe.connect();
    await assert.rejects(probe.get('w:0'), (e) => /inaccessible/.test(e.message) && e.message.includes(k.key.key_name));
    probe.disconnect();
    const ackedBeforeCut = writer.acked.length;
    await restore(k);
    await waitForState(c.id, 'available', (INTERVAL_S + 10) * 1000);
    console.log(`${label}: available again ${Date.now() - cutAt} ms after the cut`);
    assert.equal(cli(['key', 'get', '--project', k.project.id, k.key.id, '--output', 'json']).json.state, 'active',
      'the key record healed by itself');
    await sleep(1500);
    writer.stop = true;
    await writer.done;
    assert.ok(writer.acked.length > ackedBeforeCut, 'the writer resumed by itself after the restore');
    assert.ok(writer.errors.some((e) => /inaccessible/.test(e)), 'writers saw the clear error while cut');
    const missing = await readBack(port, c.password, writer.acked);
    assert.deepEqual(missing.slice(0, 5), [], `${missing.length} acknowledged writes lost`);
  });
}

test('transient KMS trouble: ridden out under the grace, fail closed beyond it, back after', async () => {
  const k = await setupKey('transient', 'eastus2');
  const c = createCluster(k, 'steady');
  const { port } = splitEndpoint(c.endpoint);
  const writer = await startWriter(port, c.password);
  // Shorter than the grace: every getkey fails for ~4 s (503s, dropped connections, garbage).
  await emu.fault({ operation: 'getkey', kind: '503', count: 1000 });
  await sleep(2000);
  await emu.clearFaults();
  await emu.fault({ operation: 'getkey', kind: 'drop', count: 1000 });
  await sleep(2000);
  await emu.clearFaults();
  await sleep(INTERVAL_S * 1000 + 1000);
  let now = getCluster(c.id);
  assert.equal(now.state, 'available', now.state_message);
  assert.equal(writer.errors.length, 0, `writes failed during transient trouble: ${writer.errors.slice(0, 3)}`);
  // Longer than the grace: inaccessible, saying why; back when the faults stop.
  await emu.fault({ operation: 'getkey', kind: '503', count: 100000 });
  const { cluster: dead, ms } = await waitForState(c.id, 'inaccessible', (GRACE_S + INTERVAL_S + 10) * 1000);
  console.log(`transient: inaccessible after ${ms} ms of 503s (grace ${GRACE_S} s)`);
  assert.match(dead.state_message, /grace/);
  await emu.clearFaults();
  await waitForState(c.id, 'available', (INTERVAL_S + 10) * 1000);
  writer.stop = true;
  await writer.done;
  const missing = await readBack(port, c.password, writer.acked);
  assert.equal(missing.length, 0);
});

test('100 clusters under one key: one key check per interval, not 100', async () => {
  // A server of its own, so the other tests' keys do not add to the count.
  const main = server;
  server = new Server(tempDir(), keywardArgs(), { env: { AZURE_CLIENT_SECRET: app.client_secret } });
  await server.start();
  try {
    await manyClusters();
  } finally {
    await server.stop('SIGTERM');
    server = main;
  }
});

async function manyClusters() {
  const k = await setupKey('many', 'westus2');
  for (let i = 0; i < 100; i++) createCluster(k, `m${i}`);
  await sleep(INTERVAL_S * 1000 + 500);
  const before = await emu.counters();
  const windowS = 5 * INTERVAL_S;
  await sleep(windowS * 1000);
  const afterC = await emu.counters();
  // This key's reads only: the other tests' keys are still checked by their own server.
  const op = `getkey:${k.vault}/${k.key.key_name}`;
  const checks = (afterC[op] || 0) - (before[op] || 0);
  console.log(`100 clusters: ${checks} getkey calls in ${windowS} s (interval ${INTERVAL_S} s)`);
  // One check per interval (jittered ±10 %), plus at most the one that straddles the window.
  assert.ok(checks >= windowS / INTERVAL_S - 1 && checks <= windowS / INTERVAL_S + 1, `${checks} key reads in ${windowS} s`);
}

test('rotation: twice in a row and during kill -9 restarts; every cluster re-wraps to the newest version', async () => {
  const k = await setupKey('rotate', 'centralus');
  const clusters = [createCluster(k, 'r1'), createCluster(k, 'r2')];
  const versionOf = (id) => getCluster(id).encryption.key_version;
  const v1 = (await k.kc.getKey(k.key.key_name)).properties.version;
  for (const c of clusters) assert.equal(versionOf(c.id), v1);
  await k.kc.rotateKey(k.key.key_name);
  const v3 = (await k.kc.rotateKey(k.key.key_name)).properties.version;
  const deadline = Date.now() + (INTERVAL_S + 6) * 1000;
  while (Date.now() < deadline && clusters.some((c) => versionOf(c.id) !== v3)) await sleep(200);
  for (const c of clusters) assert.equal(versionOf(c.id), v3, 're-wrapped online to the newest version');
  for (const c of clusters) assert.equal(getCluster(c.id).state, 'available');

  // Rotations while the server is killed and restarted.
  let newest = v3;
  for (let round = 0; round < 3; round++) {
    newest = (await k.kc.rotateKey(k.key.key_name)).properties.version;
    await sleep(Math.floor(Math.random() * INTERVAL_S * 1000));
    await server.stop('SIGKILL');
    await server.start();
    for (const c of clusters) assert.equal(getCluster(c.id).state, 'available', `round ${round}`);
  }
  const end = Date.now() + (INTERVAL_S + 6) * 1000;
  while (Date.now() < end && clusters.some((c) => versionOf(c.id) !== newest)) await sleep(200);
  for (const c of clusters) assert.equal(versionOf(c.id), newest);
  // Every older version can go now.
  for await (const p of k.kc.listPropertiesOfKeyVersions(k.key.key_name)) {
    if (p.version !== newest) await k.kc.updateKeyProperties(k.key.key_name, p.version, { enabled: false });
  }
  await sleep((INTERVAL_S + 2) * 1000);
  for (const c of clusters) {
    assert.equal(getCluster(c.id).state, 'available');
    assert.equal(cli(['cluster', 'pause', c.id, '--output', 'json']).json.state, 'paused');
    const resumed = cli(['cluster', 'resume', c.id, '--output', 'json']);
    assert.equal(resumed.json?.state, 'available', resumed.stderr);
  }
  const dict = fs.readFileSync(path.join(server.dataDir, 'clusters', clusters[0].id, 'keys.dict')).toString('latin1');
  assert.ok(dict.includes(`/keys/${k.key.key_name}/${newest}`));
});
