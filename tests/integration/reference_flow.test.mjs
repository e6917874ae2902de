// The reference's whole CMEK flow (shared/reference/tidb-cloud-cmek-azure.txt) through the CLI,
// as a new user runs it, against a real `keyward serve` whose KMS seam holds the test-only fake
// (the customer's Key Vault is played by editing the fake's state).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Redis from 'ioredis';
import { FakeKms, fakeServer, splitEndpoint, tempDir } from './harness.mjs';

function json(r) {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test('reference flow: CMEK project, key setup, test, cluster, pause/disable/enable/resume, delete', async () => {
  const dir = tempDir();
  const fake = new FakeKms(dir);
  const server = await fakeServer(dir, fake).start();
  try {
    // Step 1: an organization owner creates a CMEK-enabled project.
    const project = json(server.cli(['project', 'create', '--name', 'payments', '--cmek', '--output', 'json']));
    assert.equal(project.cmek_enabled, true);

    // A member cannot create a CMEK project; CMEK cannot be toggled either way.
    const member = json(server.cli(['project', 'add-member', project.id, '--name', 'mallory', '--role', 'project_member', '--output', 'json']));
    const denied = server.cli(['project', 'create', '--name', 'sneaky', '--cmek'], { KEYWARD_TOKEN: member.token });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /creating a project needs the organization owner role or the organization-level project_creator role.*\(HTTP 403\)/);
    const off = server.cli(['project', 'update', project.id, '--cmek', 'false']);
    assert.match(off.stderr, /CMEK cannot be turned off.*\(HTTP 409\)/);
    const plain = json(server.cli(['project', 'create', '--name', 'legacy', '--output', 'json']));
    const on = server.cli(['project', 'update', plain.id, '--cmek', 'true']);
    assert.match(on.stderr, /CMEK cannot be enabled for an existing project.*\(HTTP 409\)/);

    // Step 3 before step 2: no key for azure/eastus yet -> the tip says how to create one.
    const early = server.cli(['cluster', 'create', '--project', project.id, '--name', 'orders', '--cloud', 'azure', '--region', 'eastus', '--tier', 'dedicated']);
    assert.equal(early.code, 1);
    assert.match(early.stderr, /no encryption key for azure in region eastus.*keyward key create --project \S+ --provider azure-key-vault --region eastus.*\(HTTP 409\)/);

    // Step 2: create the encryption key; keyward appends a unique suffix and shows the setup.
    const key = json(server.cli(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', 'eastus',
      '--key-vault-name', 'kv-payments', '--key-name-prefix', 'tidb-cmek', '--output', 'json']));
    assert.equal(key.state, 'pending');
    assert.match(key.key_name, /^tidb-cmek-[0-9a-f]{8}$/);
    const setup = key.setup;
    assert.equal(setup.full_key_name, key.key_name);
    assert.match(setup.service_identity.microsoft_entra_application_id, /^[0-9a-f-]{36}$/);
    const commands = setup.az_commands.map((c) => c.command).join('\n');
    assert.match(commands, new RegExp(`az ad sp create --id ${setup.service_identity.microsoft_entra_application_id}`));
    assert.match(commands, /az keyvault create --name kv-payments .*--location eastus --enable-purge-protection true/);
    assert.match(commands, new RegExp(`az keyvault key create --vault-name kv-payments --name ${key.key_name}`));
    assert.match(commands, /--role "Key Vault Crypto Officer"/);
    assert.match(commands, new RegExp(`--role "Key Vault Crypto Service Encryption User".*/keys/${key.key_name}`));
    const template = JSON.parse(server.cli(['key', 'arm-template', '--project', project.id, key.id]).stdout);
    const vault = template.resources.find((r) => r.type === 'Microsoft.KeyVault/vaults');
    assert.equal(vault.properties.enablePurgeProtection, true);
    const text = JSON.stringify(template);
    assert.match(text, /Key Vault Crypto Service Encryption User/);
    assert.match(text, /Key Vault Crypto Officer/);
    assert.match(text, /e147488a-f6f5-4113-8e2d-b22465e65bf6/);
    for (const p of ['location', 'keyVaultName', 'keyName', 'enterpriseAppServicePrincipalId']) assert.ok(p in template.parameters, p);
    const human = server.cli(['key', 'get', '--project', project.id, key.id]).stdout;
    assert.match(human, /full key name:\s+tidb-cmek-/);

    // Testing before the customer did anything: failed, with the step to redo.
    let tested = server.cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']);
    assert.equal(tested.code, 1);
    assert.match(JSON.parse(tested.stdout).status_message, /not found in Key Vault 'kv-payments'.*Step 2\.7/);

    // The customer creates the key (purge protection on, eastus) and assigns both roles.
    fake.createKey(key.key_name, { region: 'eastus' });
    tested = server.cli(['key', 'test', '--project', project.id, key.id]);
    assert.equal(tested.code, 1);
    assert.match(tested.stdout, /FAIL\s+describe: .*Key Vault Crypto Service Encryption User.*Step 2\.9/);
    fake.update(key.key_name, { granted: true });
    tested = server.cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']);
    const active = json(tested);
    assert.equal(active.state, 'active', JSON.stringify(active.checks));
    assert.deepEqual(active.checks.map((c) => c.step), ['connect', 'describe', 'enabled', 'key_operations', 'purge_protection', 'region', 'wrap', 'unwrap']);

    // Step 3: starter or gcp clusters are refused in a CMEK project; dedicated/azure/eastus works.
    const starter = server.cli(['cluster', 'create', '--project', project.id, '--name', 'cheap', '--cloud', 'azure', '--region', 'eastus', '--tier', 'starter']);
    assert.match(starter.stderr, /only create dedicated clusters.*\(HTTP 409\)/);
    const gcp = server.cli(['cluster', 'create', '--project', project.id, '--name', 'elsewhere', '--cloud', 'gcp', '--region', 'us-central1', '--tier', 'dedicated']);
    assert.match(gcp.stderr, /only create clusters on aws or azure, not gcp.*\(HTTP 409\)/);
    const cluster = json(server.cli(['cluster', 'create', '--project', project.id, '--name', 'orders', '--cloud', 'azure', '--region', 'eastus', '--tier', 'dedicated', '--output', 'json']));
    assert.equal(cluster.state, 'available');
    assert.equal(cluster.encryption_key_id, key.id, 'the key was matched automatically');

    // Dual-region backup is refused; a single-region policy is fine.
    const dual = server.cli(['cluster', 'backup-policy', cluster.id, '--schedule', 'daily', '--retention-days', '7', '--dual-region', '--secondary-region', 'westus']);
    assert.match(dual.stderr, /dual-region backup is not supported in CMEK-enabled projects.*\(HTTP 409\)/);
    const single = json(server.cli(['cluster', 'backup-policy', cluster.id, '--schedule', 'daily', '--retention-days', '7', '--output', 'json']));
    assert.deepEqual(single.backup_policy, { schedule: 'daily', retention_days: 7, dual_region: { enabled: false, secondary_region: '' } });

    // Data in, pause, disable the key: resume fails naming the disabled key and stays paused.
    const { host, port } = splitEndpoint(cluster.endpoint);
    let redis = new Redis({ host, port, password: cluster.password, lazyConnect: true });
    await redis.connect();
    for (let i = 0; i < 100; i++) await redis.set(`order:${i}`, `amount-${i}`);
    redis.disconnect();
    assert.equal(json(server.cli(['cluster', 'pause', cluster.id, '--output', 'json'])).state, 'paused');
    fake.update(key.key_name, { enabled: false });
    const resume = server.cli(['cluster', 'resume', cluster.id]);
    assert.equal(resume.code, 1);
    assert.match(resume.stderr, new RegExp(`disabled in Key Vault 'kv-payments' \\(key '${key.key_name}'\\); enable it, then resume the cluster.*stays paused.*\\(HTTP 409\\)`));
    assert.equal(json(server.cli(['cluster', 'get', cluster.id, '--output', 'json'])).state, 'paused');

    // Enable, resume: everything is back.
    fake.update(key.key_name, { enabled: true });
    const back = json(server.cli(['cluster', 'resume', cluster.id, '--output', 'json']));
    assert.equal(back.state, 'available');
    redis = new Redis({ ...splitEndpoint(back.endpoint), password: cluster.password, lazyConnect: true });
    await redis.connect();
    for (let i = 0; i < 100; i++) assert.equal(await redis.get(`order:${i}`), `amount-${i}`);
    redis.disconnect();

    // Delete shreds: the key dictionary and the files are gone, the record says deleted.
    const deleted = json(server.cli(['cluster', 'delete', cluster.id, '--yes', '--output', 'json']));
    assert.equal(deleted.state, 'deleted');
    assert.equal(fs.existsSync(path.join(dir, 'clusters', cluster.id)), false);

    // The audit log tells the story, with key ids and without secrets.
    const events = json(server.cli(['audit', 'list', '--project', project.id, '--output', 'json']));
    const actions = events.map((e) => `${e.action}:${e.result}`);
    for (const a of ['project.create:success', 'encryption_key.create:success', 'encryption_key.test:failure',
      'encryption_key.test:success', 'cluster.create:success', 'cluster.backup_policy:failure', 'cluster.pause:success',
      'cluster.resume:failure', 'cluster.resume:success', 'cluster.delete:success']) {
      assert.ok(actions.includes(a), `audit lacks ${a}: ${actions.join(', ')}`);
    }
    const created = events.find((e) => e.action === 'cluster.create');
    assert.match(created.key_id, new RegExp(`${key.id} \\(azure-key-vault ${key.key_name}\\)`));
    assert.match(events.find((e) => e.action === 'encryption_key.test' && e.result === 'success').key_version, /^v1$/);
    const all = JSON.stringify(events);
    assert.ok(!all.includes(cluster.password) && !all.includes(member.token) && !all.includes(server.token), 'secret in audit');
  } finally {
    await server.stop('SIGKILL');
  }
});

test('key test names each missing step: purge protection off, wrong region, key disabled', async () => {
  const dir = tempDir();
  const fake = new FakeKms(dir);
  const server = await fakeServer(dir, fake).start();
  try {
    const project = json(server.cli(['project', 'create', '--name', 'checks', '--cmek', '--output', 'json']));
    const key = json(server.cli(['key', 'create', '--project', project.id, '--provider', 'azure-key-vault', '--region', 'eastus',
      '--key-vault-name', 'kv-checks', '--key-name-prefix', 'k', '--output', 'json']));
    fake.createKey(key.key_name, { region: 'westeurope', purgeProtection: false, granted: true, enabled: false });
    const r = server.cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']);
    const out = JSON.parse(r.stdout);
    assert.equal(out.state, 'failed');
    const failed = Object.fromEntries(out.checks.filter((c) => !c.ok).map((c) => [c.step, c.message]));
    assert.match(failed.enabled, /is disabled; enable it in Key Vault/);
    assert.match(failed.purge_protection, /purge protection is off.*Step 2\.6/);
    assert.match(failed.region, /lives in region westeurope but this key is for eastus/);
    assert.match(failed.wrap, /disabled/);
    // Fixed by the customer: the same key is re-testable and becomes active.
    fake.update(key.key_name, { region: 'eastus', purge_protection: true, enabled: true });
    assert.equal(json(server.cli(['key', 'test', '--project', project.id, key.id, '--output', 'json'])).state, 'active');
  } finally {
    await server.stop('SIGKILL');
  }
});
