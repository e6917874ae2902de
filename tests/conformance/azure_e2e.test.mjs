// The reference flow against the real thing's stand-in: the product `keyward serve` (its C++
// Azure Key Vault client, Entra ID client-secret auth, libcurl) talks to keyward-kms-emulator,
// while the customer's side is played with the official Azure SDK and ARM REST calls.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ClientSecretCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import Redis from 'ioredis';
import { Emulator, ROLE_CRYPTO_OFFICER, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER } from './emulator.mjs';
import { Server, sleep, splitEndpoint, tempDir } from '../integration/harness.mjs';

const emu = new Emulator();
let admin;   // the customer's user
let app;     // keyward's Entra application
let server;

function keywardArgs() {
  return ['--azure-tenant-id', app.tenant_id, '--azure-client-id', app.client_id, '--azure-app-name', 'keyward-e2e',
    '--azure-managed-hsm-url-template', emu.info.managed_hsm_url_template,
    '--azure-authority-host', emu.info.authority_host, '--azure-management-host', emu.info.management_host,
    '--azure-vault-url-template', emu.info.vault_url_template, '--azure-connect-to', emu.info.connect_to,
    '--azure-ca-file', emu.info.ca_file,
    // The key health monitor checks each governing key once at first sight (with a wrap/unwrap
    // round trip), then once an hour here: the KMS call counts below stay exact.
    '--key-check-interval', '3600'];
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

// The customer's steps 2.6-2.9: vault with purge protection, Crypto Officer for themselves, the
// key under keyward's full name, Crypto Service Encryption User for keyward's app on the key.
async function customerSetup(vault, keyName, { location = 'eastus', purgeProtection = true, grantApp = true, grantOnVault = false } = {}) {
  const scope = await emu.createVault(admin, { name: vault, location, purgeProtection, subscription: 'sub-1', resourceGroup: 'rg-1' });
  await emu.assignRole(admin, scope, ROLE_CRYPTO_OFFICER, admin.object_id);
  await keyClient(vault).createRsaKey(keyName, { keySize: 3072, keyOps: ['wrapKey', 'unwrapKey'] });
  if (grantApp) await emu.assignRole(admin, grantOnVault ? scope : `${scope}/keys/${keyName}`, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER, app.object_id);
  return scope;
}

before(async () => {
  await emu.start(process.env.KEYWARD_EMULATOR_STATE_DIR);
  admin = await emu.principal('customer-admin');
  app = await emu.principal('keyward-app');
  server = new Server(tempDir(), keywardArgs(), { env: { AZURE_CLIENT_SECRET: app.client_secret } });
  await server.start();
});
// Whatever `before` got to, stop it: a child left running keeps the test process alive until ctest's timeout.
after(async () => { await server?.stop('SIGKILL'); await emu.stop(); });

test('reference flow against the emulator: key, roles, test, cluster, disable/enable, rotation', async () => {
  const project = cli(['project', 'create', '--name', 'azure-e2e', '--cmek', '--output', 'json']).json;
  const key = cli(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', 'eastus',
    '--key-vault-name', 'kv-e2e', '--key-name-prefix', 'tidb-cmek', '--subscription-id', 'sub-1', '--resource-group', 'rg-1', '--output', 'json']).json;
  assert.equal(key.setup.service_identity.microsoft_entra_application_id, app.client_id, 'keyward shows its real application id');
  assert.equal(key.setup.service_identity.microsoft_entra_application_name, 'keyward-e2e');
  assert.equal(key.setup.service_identity.placeholder, false, 'a real identity is not called a placeholder');
  assert.equal(key.setup.service_identity.warning, undefined);

  // Key created but keyward's app has no role: failed, naming the role and the principal.
  await customerSetup('kv-e2e', key.key_name, { grantApp: false });
  let t = cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']).json;
  assert.equal(t.state, 'failed');
  assert.match(t.status_message, new RegExp(`keyward-e2e \\(${app.client_id}\\) may not perform Microsoft\\.KeyVault/vaults/keys/read.*Key Vault Crypto Service Encryption User`));
  await emu.assignRole(admin, `/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.KeyVault/vaults/kv-e2e/keys/${key.key_name}`,
    ROLE_CRYPTO_SERVICE_ENCRYPTION_USER, app.object_id);
  t = cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']).json;
  assert.equal(t.state, 'active', JSON.stringify(t.checks));
  assert.match(t.checks.find((c) => c.step === 'region').message, /vault region eastus matches/);
  assert.match(t.checks.find((c) => c.step === 'purge_protection').message, /purge protection is on/);

  const cluster = cli(['cluster', 'create', '--project', project.id, '--name', 'orders', '--cloud', 'azure', '--region', 'eastus', '--tier', 'dedicated', '--output', 'json']).json;
  assert.equal(cluster.state, 'available');
  const dual = cli(['cluster', 'backup-policy', cluster.id, '--schedule', 'daily', '--retention-days', '7', '--dual-region', '--secondary-region', 'westus']);
  assert.match(dual.stderr, /dual-region backup is not supported in CMEK-enabled projects/);

  // Writes and reads make no KMS call: one unwrap per cluster open, none per operation.
  const { port } = splitEndpoint(cluster.endpoint);
  await sleep(3000);  // the monitor's first check of the key (a round trip) happens by then
  const before = await emu.counters();
  const script = Array.from({ length: 500 }, (_, i) => `SET order:${i} v${i}`).join('\n') + '\nGET order:7\n';
  const rc = spawnSync('redis-cli', ['-p', String(port), '--no-auth-warning', '-a', cluster.password], { input: script, encoding: 'utf8' });
  assert.match(rc.stdout, /v7/);
  const afterIo = await emu.counters();
  // A key check's round trip is one wrap and one unwrap; everything else would be the data path.
  const unwraps = (afterIo.unwrapkey || 0) - (before.unwrapkey || 0);
  const wraps = (afterIo.wrapkey || 0) - (before.wrapkey || 0);
  assert.equal(unwraps - wraps, 0, 'reads and writes called the KMS');

  // Pause, disable the key in Key Vault: resume fails naming the disabled key; enable, resume: back.
  assert.equal(cli(['cluster', 'pause', cluster.id, '--output', 'json']).json.state, 'paused');
  const kc = keyClient('kv-e2e');
  const current = await kc.getKey(key.key_name);
  await kc.updateKeyProperties(key.key_name, current.properties.version, { enabled: false });
  const refused = cli(['cluster', 'resume', cluster.id]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`encryption key for azure/eastus is disabled in Key Vault 'kv-e2e' \\(key '${key.key_name}'\\); enable it, then resume the cluster`));
  assert.equal(cli(['cluster', 'get', cluster.id, '--output', 'json']).json.state, 'paused');
  await kc.updateKeyProperties(key.key_name, current.properties.version, { enabled: true });
  const opened = await emu.counters();
  assert.equal(cli(['cluster', 'resume', cluster.id, '--output', 'json']).json.state, 'available');
  const reopened = await emu.counters();
  // Net of a key check's round trip (one wrap + one unwrap), if the monitor ran meanwhile.
  assert.equal(((reopened.unwrapkey || 0) - (opened.unwrapkey || 0)) - ((reopened.wrapkey || 0) - (opened.wrapkey || 0)), 1,
    'one unwrap per cluster open');
  let redis = new Redis({ host: '127.0.0.1', port, password: cluster.password, lazyConnect: true });
  await redis.connect();
  assert.equal(await redis.get('order:499'), 'v499');
  redis.disconnect();

  // Rotation in Key Vault needs nothing from keyward: after a restart the recorded (old) version
  // still unwraps, and the cluster keeps serving.
  const rotatedTo = (await kc.rotateKey(key.key_name)).properties.version;
  await kc.updateKeyRotationPolicy(key.key_name, { lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P90D' }] });
  // 91 days later the policy rotates the key by itself; keyward is not told.
  const byPolicy = (await emu.request('POST', `${emu.info.admin_url}/rotation-policies:run`, { advance_days: 91 })).json.rotated;
  assert.ok(byPolicy.some((r) => r.startsWith(`kv-e2e/${key.key_name}/`)), JSON.stringify(byPolicy));
  await server.stop('SIGTERM');
  await server.start();
  assert.equal(cli(['cluster', 'get', cluster.id, '--output', 'json']).json.state, 'available');
  redis = new Redis({ host: '127.0.0.1', port, password: cluster.password, lazyConnect: true });
  await redis.connect();
  assert.equal(await redis.get('order:3'), 'v3');
  redis.disconnect();
  // A new cluster wraps under the newest version.
  const second = cli(['cluster', 'create', '--project', project.id, '--name', 'after-rotation', '--cloud', 'azure', '--region', 'eastus', '--tier', 'dedicated', '--output', 'json']).json;
  assert.equal(second.state, 'available');
  // The wrapped-key record (plaintext header of keys.dict) names the version that wrapped it.
  const dictOf = (id) => fs.readFileSync(path.join(server.dataDir, 'clusters', id, 'keys.dict')).toString('latin1');
  const newest = (await kc.getKey(key.key_name)).properties.version;
  assert.notEqual(newest, rotatedTo, 'the policy made a newer version than the manual rotation');
  assert.ok(dictOf(second.id).includes(`/keys/${key.key_name}/${newest}`), 'new wraps use the newest version');
  // The running cluster is re-wrapped online under the newest version by the key health monitor
  // (its first check after the restart), so the older versions are no longer needed.
  const until = Date.now() + 15000;
  while (Date.now() < until && !dictOf(cluster.id).includes(`/keys/${key.key_name}/${newest}`)) await sleep(200);
  assert.ok(dictOf(cluster.id).includes(`/keys/${key.key_name}/${newest}`), 're-wrapped to the newest version');
  assert.equal(cli(['cluster', 'get', cluster.id, '--output', 'json']).json.encryption.key_version, newest);
});

test('key test failures name the reference step: purge protection off, wrong region, wrong name', async () => {
  const project = cli(['project', 'create', '--name', 'azure-bad', '--cmek', '--output', 'json']).json;
  const mk = (region, vault) => cli(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', region,
    '--key-vault-name', vault, '--key-name-prefix', 'k', '--subscription-id', 'sub-1', '--resource-group', 'rg-1', '--output', 'json']).json;
  const noPurge = mk('eastus', 'kv-nopurge');
  await customerSetup('kv-nopurge', noPurge.key_name, { purgeProtection: false });
  let t = cli(['key', 'test', '--project', project.id, noPurge.id, '--output', 'json']).json;
  assert.equal(t.state, 'failed');
  assert.match(t.status_message, /purge protection is off on the Key Vault.*Step 2\.6/);

  const wrongRegion = mk('westus', 'kv-east');
  await customerSetup('kv-east', wrongRegion.key_name, { location: 'eastus' });
  t = cli(['key', 'test', '--project', project.id, wrongRegion.id, '--output', 'json']).json;
  assert.match(t.status_message, /lives in region eastus but this key is for westus/);

  const wrongName = mk('northeurope', 'kv-named');
  // Granted on the whole vault, so the lookup gets past RBAC and finds no such key.
  await customerSetup('kv-named', 'some-other-name', { location: 'northeurope', grantOnVault: true });
  t = cli(['key', 'test', '--project', project.id, wrongName.id, '--output', 'json']).json;
  assert.match(t.status_message, new RegExp(`key '${wrongName.key_name}' in Key Vault 'kv-named' was not found.*Step 2\\.7`));
});

test('faults: 429s and 500s are retried within bounds; with the KMS down nothing is left half-done', async () => {
  const project = cli(['project', 'create', '--name', 'azure-faults', '--cmek', '--output', 'json']).json;
  const key = cli(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', 'eastus2',
    '--key-vault-name', 'kv-faults', '--key-name-prefix', 'f', '--output', 'json']).json;
  await customerSetup('kv-faults', key.key_name, { location: 'eastus2' });
  await emu.fault({ operation: 'getkey', kind: '429', count: 1, retry_after: 1 });
  await emu.fault({ operation: 'wrapkey', kind: '500', count: 2 });
  const t = cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']).json;
  assert.equal(t.state, 'active', JSON.stringify(t.checks));
  assert.match(t.checks.find((c) => c.step === 'region').message, /not verified/);
  const c = cli(['cluster', 'create', '--project', project.id, '--name', 'faulty', '--cloud', 'azure', '--region', 'eastus2', '--tier', 'dedicated', '--output', 'json']).json;
  cli(['cluster', 'pause', c.id]);
  await emu.fault({ operation: 'unwrapkey', kind: '429', count: 2, retry_after: 1 });
  await emu.fault({ operation: 'unwrapkey', kind: 'latency', count: 1, latency_ms: 300 });
  await emu.fault({ operation: 'unwrapkey', kind: 'drop', count: 1 });
  await emu.fault({ operation: 'getkey', kind: '500', count: 1, rate: 0.5 });
  assert.equal(cli(['cluster', 'resume', c.id, '--output', 'json']).json.state, 'available');
  cli(['cluster', 'pause', c.id]);
  await emu.fault({ operation: 'unwrapkey', kind: '503', count: 20 });
  const down = cli(['cluster', 'resume', c.id]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /Key Vault 'kv-faults' is unavailable for unwrapKey \(HTTP 503.*after retries.*stays paused/);
  assert.equal(cli(['cluster', 'get', c.id, '--output', 'json']).json.state, 'paused');
  await emu.clearFaults();
  assert.equal(cli(['cluster', 'resume', c.id, '--output', 'json']).json.state, 'available');
  // The emulator stops altogether: resume fails saying it cannot reach Azure, and stays paused.
  cli(['cluster', 'pause', c.id]);
  await emu.stop();
  try {
    const gone = cli(['cluster', 'resume', c.id]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /cannot reach https:\/\/\S+: Couldn.t connect to server.*stays paused/);
    assert.equal(cli(['cluster', 'get', c.id, '--output', 'json']).json.state, 'paused');
  } finally {
    await emu.start(emu.stateDir);  // same state dir: same CA, principals, vaults and keys
    // It came back on a new port: point keyward at it.
    await server.stop('SIGTERM');
    server.extraArgs = keywardArgs();
    await server.start();
  }
});

test('managed identity: keyward gets its token from the IMDS endpoint instead of a secret', async () => {
  const mi = await emu.principal('keyward-managed-identity', { managed_identity: true });
  const miServer = new Server(tempDir(), ['--azure-managed-identity', '--azure-imds-url', emu.info.imds_url,
    '--azure-client-id', mi.client_id, '--azure-management-host', emu.info.management_host,
    '--azure-vault-url-template', emu.info.vault_url_template, '--azure-connect-to', emu.info.connect_to,
    '--azure-ca-file', emu.info.ca_file]);
  await miServer.start();
  try {
    const run = (args) => JSON.parse(miServer.cli(args).stdout);
    const project = run(['project', 'create', '--name', 'mi', '--cmek', '--output', 'json']);
    const key = run(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', 'eastus',
      '--key-vault-name', 'kv-mi', '--key-name-prefix', 'mi', '--output', 'json']);
    assert.equal(key.setup.service_identity.microsoft_entra_application_id, mi.client_id);
    const scope = await emu.createVault(admin, { name: 'kv-mi', location: 'eastus' });
    await emu.assignRole(admin, scope, ROLE_CRYPTO_OFFICER, admin.object_id);
    await keyClient('kv-mi').createRsaKey(key.key_name, { keySize: 2048 });
    await emu.assignRole(admin, `${scope}/keys/${key.key_name}`, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER, mi.object_id);
    const before = (await emu.counters()).imds || 0;
    assert.equal(run(['key', 'test', '--project', project.id, key.id, '--output', 'json']).state, 'active');
    assert.ok(((await emu.counters()).imds || 0) > before, 'the token came from IMDS');
  } finally {
    await miServer.stop('SIGKILL');
  }
});

test('client certificate and workload identity: keyward signs its own assertions', async () => {
  const { spawnSync } = await import('node:child_process');
  const fs = await import('node:fs');
  const path = await import('node:path');
  const dir = tempDir('kw-ids-');
  const keyPem = path.join(dir, 'key.pem');
  const certPem = path.join(dir, 'cert.pem');
  assert.equal(spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPem, '-out', certPem,
    '-subj', '/CN=keyward', '-days', '1']).status, 0);
  const bundle = path.join(dir, 'bundle.pem');
  fs.writeFileSync(bundle, fs.readFileSync(certPem, 'utf8') + fs.readFileSync(keyPem, 'utf8'), { mode: 0o600 });
  const certApp = await emu.principal('keyward-cert', { certificate_pem: fs.readFileSync(certPem, 'utf8') });
  const wlApp = await emu.principal('keyward-workload', { federated_subject: 'system:serviceaccount:keyward:server' });
  const token = (await emu.request('POST', `${emu.info.admin_url}/federated-tokens`, { subject: 'system:serviceaccount:keyward:server' })).json.token;
  const tokenFile = path.join(dir, 'federated-token');
  fs.writeFileSync(tokenFile, token);
  const common = ['--azure-authority-host', emu.info.authority_host, '--azure-management-host', emu.info.management_host,
    '--azure-vault-url-template', emu.info.vault_url_template, '--azure-connect-to', emu.info.connect_to, '--azure-ca-file', emu.info.ca_file];
  const cases = [
    [certApp, { AZURE_CLIENT_CERTIFICATE_PATH: bundle }, 'kv-cert'],
    [wlApp, { AZURE_FEDERATED_TOKEN_FILE: tokenFile }, 'kv-wl'],
  ];
  for (const [principal, env, vault] of cases) {
    const srv = new Server(tempDir(), ['--azure-tenant-id', principal.tenant_id, '--azure-client-id', principal.client_id, ...common], { env });
    await srv.start();
    try {
      const run = (args) => JSON.parse(srv.cli(args).stdout);
      const project = run(['project', 'create', '--name', 'ids', '--cmek', '--output', 'json']);
      const key = run(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', 'eastus',
        '--key-vault-name', vault, '--key-name-prefix', 'id', '--output', 'json']);
      const scope = await emu.createVault(admin, { name: vault, location: 'eastus' });
      await emu.assignRole(admin, scope, ROLE_CRYPTO_OFFICER, admin.object_id);
      await keyClient(vault).createRsaKey(key.key_name, { keySize: 2048 });
      await emu.assignRole(admin, `${scope}/keys/${key.key_name}`, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER, principal.object_id);
      const tested = run(['key', 'test', '--project', project.id, key.id, '--output', 'json']);
      assert.equal(tested.state, 'active', `${vault}: ${tested.status_message}`);
    } finally {
      await srv.stop('SIGKILL');
    }
  }
});

test('Managed HSM: an oct-HSM key wraps with A256KW under local RBAC', async () => {
  const hsm = 'hsm-e2e';
  const mgmt = await emu.token(admin, 'https://management.azure.com/.default');
  const armPath = `/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.KeyVault/managedHSMs/${hsm}`;
  const put = await emu.request('PUT', `${emu.info.management_host}${armPath}?api-version=2023-07-01`,
    { location: 'eastus', properties: { enablePurgeProtection: true, initialAdminObjectIds: [admin.object_id] } }, mgmt);
  assert.equal(put.status, 200);
  const hsmUrl = emu.info.managed_hsm_url_template.replace('{name}', hsm);
  const hsmToken = await emu.token(admin, 'https://managedhsm.azure.net/.default');
  const assign = async (scope, role, principal) => {
    const r = await emu.request('PUT', `${hsmUrl}${scope}/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}?api-version=7.4`,
      { properties: { roleDefinitionId: `Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/${role}`, principalId: principal } }, hsmToken);
    assert.equal(r.status, 201, JSON.stringify(r.json));
  };
  await assign('/', '21dbd100-6940-42c2-9190-5d6cb909625b', admin.object_id);  // Managed HSM Crypto User

  const project = cli(['project', 'create', '--name', 'hsm', '--cmek', '--output', 'json']).json;
  const key = cli(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', 'eastus',
    '--managed-hsm-name', hsm, '--key-name-prefix', 'h', '--subscription-id', 'sub-1', '--resource-group', 'rg-1', '--output', 'json']).json;
  assert.match(key.setup.az_commands.map((c) => c.command).join('\n'), /--kty oct-HSM --size 256.*Managed HSM Crypto Service Encryption User/s);
  const cred = new ClientSecretCredential(admin.tenant_id, admin.client_id, admin.client_secret,
    { authorityHost: emu.info.authority_host, disableInstanceDiscovery: true });
  const hsmClient = new KeyClient(hsmUrl, cred, { serviceVersion: '7.4', disableChallengeResourceVerification: true });
  const created = await hsmClient.createOctKey(key.key_name, { hsm: true, keySize: 256, keyOps: ['wrapKey', 'unwrapKey'] });
  assert.equal(created.keyType, 'oct-HSM');
  await assign(`/keys/${key.key_name}`, '33413926-3206-4cdd-b39a-83574fe37a17', app.object_id);  // Crypto Service Encryption User

  const t = cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']).json;
  assert.equal(t.state, 'active', JSON.stringify(t.checks));
  const c = cli(['cluster', 'create', '--project', project.id, '--name', 'on-hsm', '--cloud', 'azure', '--region', 'eastus', '--tier', 'dedicated', '--output', 'json']).json;
  assert.equal(c.state, 'available');
  assert.ok(fs.readFileSync(path.join(server.dataDir, 'clusters', c.id, 'keys.dict')).toString('latin1').includes('A256KW'));
  cli(['cluster', 'pause', c.id]);
  assert.equal(cli(['cluster', 'resume', c.id, '--output', 'json']).json.state, 'available');
});
