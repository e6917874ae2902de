// The official Azure SDKs (@azure/identity, @azure/keyvault-keys from npm) against
// keyward-kms-emulator: if they accept it, the emulator speaks Azure's real wire protocols.
// Run with: node --require ./conformance/azure_hosts.cjs --test conformance/azure_sdk.test.mjs
// (NODE_EXTRA_CA_CERTS is set by the runner to the emulator's CA; see run.mjs).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import { ClientSecretCredential } from '@azure/identity';
import { CryptographyClient, KeyClient } from '@azure/keyvault-keys';
import { Emulator, ROLE_CRYPTO_OFFICER, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER } from './emulator.mjs';

const emu = new Emulator();
let officer;
let app;
let vaultScope;

before(async () => {
  await emu.start(process.env.KEYWARD_EMULATOR_STATE_DIR);
  officer = await emu.principal('customer-admin');
  app = await emu.principal('keyward-app');
  vaultScope = await emu.createVault(officer, { name: 'kv-sdk', location: 'eastus' });
  await emu.assignRole(officer, vaultScope, ROLE_CRYPTO_OFFICER, officer.object_id);
});
after(async () => { await emu.stop(); });

function credential(p) {
  return new ClientSecretCredential(p.tenant_id, p.client_id, p.client_secret, {
    authorityHost: emu.info.authority_host, disableInstanceDiscovery: true });
}
function keyClient(p) {
  return new KeyClient(emu.vaultUrl('kv-sdk'), credential(p), { serviceVersion: '7.4', disableChallengeResourceVerification: true });
}

test('KeyClient: create, get, list versions, disable/enable, rotate, rotation policy', async () => {
  const client = keyClient(officer);
  const created = await client.createRsaKey('sdk-key', { keySize: 3072, keyOps: ['wrapKey', 'unwrapKey'] });
  assert.equal(created.keyType, 'RSA');
  assert.equal(created.properties.recoveryLevel, 'Recoverable');
  assert.match(created.id, /^https:\/\/kv-sdk\.vault\.azure\.net:\d+\/keys\/sdk-key\/[0-9a-f]{32}$/);
  const got = await client.getKey('sdk-key');
  assert.equal(got.properties.version, created.properties.version);
  assert.equal(got.key.n.length, 384, 'a 3072-bit modulus');
  const disabled = await client.updateKeyProperties('sdk-key', created.properties.version, { enabled: false });
  assert.equal(disabled.properties.enabled, false);
  await client.updateKeyProperties('sdk-key', created.properties.version, { enabled: true });
  const rotated = await client.rotateKey('sdk-key');
  assert.notEqual(rotated.properties.version, created.properties.version);
  const versions = [];
  for await (const v of client.listPropertiesOfKeyVersions('sdk-key')) versions.push(v.version);
  assert.deepEqual(new Set(versions), new Set([created.properties.version, rotated.properties.version]));
  const policy = await client.updateKeyRotationPolicy('sdk-key', {
    lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P90D' }], expiresIn: 'P2Y' });
  assert.equal(policy.lifetimeActions[0].action.toLowerCase(), 'rotate');
  const read = await client.getKeyRotationPolicy('sdk-key');
  assert.equal(read.lifetimeActions[0].timeAfterCreate, 'P90D');
  assert.equal(read.expiresIn, 'P2Y');
});

test('CryptographyClient: wrapKey/unwrapKey with RSA-OAEP-256; errors shaped like Azure', async () => {
  const key = await keyClient(officer).createRsaKey('wrap-key', { keySize: 2048 });
  const crypto1 = new CryptographyClient(key.id, credential(officer), { serviceVersion: '7.4', disableChallengeResourceVerification: true });
  const dek = crypto.randomBytes(32);
  const wrapped = await crypto1.wrapKey('RSA-OAEP-256', dek);
  assert.equal(wrapped.keyID, key.id);
  const unwrapped = await crypto1.unwrapKey('RSA-OAEP-256', wrapped.result);
  assert.deepEqual(Buffer.from(unwrapped.result), dek);

  // keyward's application has no role yet: ForbiddenByRbac naming the action.
  const appCrypto = new CryptographyClient(key.id, credential(app), { serviceVersion: '7.4', disableChallengeResourceVerification: true });
  await assert.rejects(appCrypto.unwrapKey('RSA-OAEP-256', wrapped.result), (e) => {
    assert.equal(e.statusCode, 403);
    assert.equal(e.code, 'Forbidden');
    assert.match(e.message, /Microsoft\.KeyVault\/vaults\/keys\/unwrap\/action/);
    return true;
  });
  // Key Vault Crypto Service Encryption User on the key: unwrap works.
  await emu.assignRole(officer, `${vaultScope}/keys/wrap-key`, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER, app.object_id);
  assert.deepEqual(Buffer.from((await appCrypto.unwrapKey('RSA-OAEP-256', wrapped.result)).result), dek);
  // Disabled: Forbidden/KeyDisabled.
  await keyClient(officer).updateKeyProperties('wrap-key', key.properties.version, { enabled: false });
  await assert.rejects(appCrypto.unwrapKey('RSA-OAEP-256', wrapped.result), (e) => {
    assert.equal(e.statusCode, 403);
    assert.match(e.message, /not allowed on a disabled key/);
    return true;
  });
  // Unknown key: KeyNotFound.
  await assert.rejects(keyClient(officer).getKey('no-such-key'), (e) => e.statusCode === 404 && e.code === 'KeyNotFound');
});

test('throttling: the SDK retries a 429 with Retry-After and succeeds', async () => {
  const client = keyClient(officer);
  await client.createRsaKey('throttled', { keySize: 2048 });
  await emu.fault({ operation: 'getkey', kind: '429', count: 2, retry_after: 1 });
  const before = (await emu.counters()).getkey || 0;
  const got = await client.getKey('throttled');
  assert.equal(got.name, 'throttled');
  assert.equal((await emu.counters()).getkey - before, 3, 'two throttled attempts, then success');
});

test('cross-check: keyward\'s C++ provider and the official SDK unwrap each other\'s wraps', async () => {
  const { spawnSync } = await import('node:child_process');
  const path = await import('node:path');
  const { repoRoot } = await import('../integration/harness.mjs');
  const tool = process.env.KEYWARD_AZURE_WRAP_BIN || path.join(repoRoot, 'build', 'tests', 'keyward-azure-wrap');
  const key = await keyClient(officer).createRsaKey('cross-key', { keySize: 2048 });
  await emu.assignRole(officer, `${vaultScope}/keys/cross-key`, ROLE_CRYPTO_SERVICE_ENCRYPTION_USER, app.object_id);
  const env = { ...process.env, AZURE_TENANT_ID: app.tenant_id, AZURE_CLIENT_ID: app.client_id, AZURE_CLIENT_SECRET: app.client_secret,
    KW_AUTHORITY: emu.info.authority_host, KW_VAULT_TEMPLATE: emu.info.vault_url_template, KW_CONNECT_TO: emu.info.connect_to, KW_CA_FILE: emu.info.ca_file };
  const dek = crypto.randomBytes(32);
  // C++ wraps, SDK unwraps.
  const w = spawnSync(tool, ['wrap', 'kv-sdk', 'cross-key', dek.toString('hex')], { env, encoding: 'utf8' });
  assert.equal(w.status, 0, w.stderr);
  const [kid, hex] = w.stdout.trim().split(' ');
  assert.equal(kid, key.id);
  const sdk = new CryptographyClient(key.id, credential(officer), { serviceVersion: '7.4', disableChallengeResourceVerification: true });
  assert.deepEqual(Buffer.from((await sdk.unwrapKey('RSA-OAEP-256', Buffer.from(hex, 'hex'))).result), dek);
  // SDK wraps, C++ unwraps.
  const other = crypto.randomBytes(32);
  const wrapped = await sdk.wrapKey('RSA-OAEP-256', other);
  const u = spawnSync(tool, ['unwrap', 'kv-sdk', 'cross-key', Buffer.from(wrapped.result).toString('hex'), key.id], { env, encoding: 'utf8' });
  assert.equal(u.status, 0, u.stderr);
  assert.equal(u.stdout.trim(), other.toString('hex'));
});

test('ClientCertificateCredential: a certificate credential gets a token the vault accepts', async () => {
  const { spawnSync } = await import('node:child_process');
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { tempDir } = await import('../integration/harness.mjs');
  const dir = tempDir('kw-cert-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-subj', '/CN=keyward-cert-app', '-days', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const bundle = path.join(dir, 'bundle.pem');
  fs.writeFileSync(bundle, fs.readFileSync(cert, 'utf8') + fs.readFileSync(key, 'utf8'), { mode: 0o600 });
  const certApp = await emu.principal('cert-app', { certificate_pem: fs.readFileSync(cert, 'utf8') });
  await emu.assignRole(officer, vaultScope, ROLE_CRYPTO_OFFICER, certApp.object_id);
  const { ClientCertificateCredential } = await import('@azure/identity');
  const cred = new ClientCertificateCredential(certApp.tenant_id, certApp.client_id, { certificatePath: bundle },
    { authorityHost: emu.info.authority_host, disableInstanceDiscovery: true });
  const client = new KeyClient(emu.vaultUrl('kv-sdk'), cred, { serviceVersion: '7.4', disableChallengeResourceVerification: true });
  const created = await client.createRsaKey('cert-made', { keySize: 2048 });
  assert.equal(created.name, 'cert-made');
  // A different certificate is refused.
  const other = path.join(dir, 'other.pem');
  spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', other, '-out', other + '.crt', '-subj', '/CN=x', '-days', '1']);
  fs.writeFileSync(other + '.bundle', fs.readFileSync(other + '.crt', 'utf8') + fs.readFileSync(other, 'utf8'));
  const wrong = new ClientCertificateCredential(certApp.tenant_id, certApp.client_id, { certificatePath: other + '.bundle' },
    { authorityHost: emu.info.authority_host, disableInstanceDiscovery: true });
  await assert.rejects(wrong.getToken('https://vault.azure.net/.default'), /not registered|AADSTS700027/);
});
