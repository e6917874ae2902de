// Every control-plane rule refused with the right status and a message that says what to do,
// bad input refused with nothing written, the one-key-per-region rule under 50 parallel
// requests, and the OpenAPI document against the routes the server answers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FakeKms, fakeServer, repoRoot, sleep, tempDir } from './harness.mjs';

let server;
let fake;
let cmek;   // CMEK project
let plain;  // project without CMEK
let dir;

before(async () => {
  dir = tempDir();
  fake = new FakeKms(dir);
  server = await fakeServer(dir, fake).start();
  cmek = (await server.api('POST', '/api/v1/projects', { name: 'rules-cmek', cmek_enabled: true })).json;
  plain = (await server.api('POST', '/api/v1/projects', { name: 'rules-plain' })).json;
});
after(async () => { await server.stop('SIGKILL'); });

async function expectError(method, url, body, status, message, token) {
  const r = await server.api(method, url, body, token);
  assert.equal(r.status, status, `${method} ${url} ${JSON.stringify(body)?.slice(0, 80)} -> ${r.text.slice(0, 300)}`);
  assert.match(r.json.error.message, message);
  assert.ok(r.json.error.code && r.json.error.details.request_id, 'error shape');
  return r;
}

async function activeAzureKey(project, region) {
  const k = (await server.api('POST', `/api/v1/projects/${project}/encryption-keys`,
    { provider: 'azure-key-vault', region, azure: { key_vault_name: `kv-${region}`, key_name_prefix: 'p' } })).json;
  fake.createKey(k.key_name, { region, granted: true });
  const t = await server.api('POST', `/api/v1/projects/${project}/encryption-keys/${k.id}:test`);
  assert.equal(t.json.state, 'active', JSON.stringify(t.json));
  return k;
}

test('rule: CMEK is chosen at project creation only, by an organization owner', async () => {
  await expectError('PATCH', `/api/v1/projects/${cmek.id}`, { cmek_enabled: false }, 409, /CMEK cannot be turned off/);
  await expectError('PATCH', `/api/v1/projects/${plain.id}`, { cmek_enabled: true }, 409, /CMEK cannot be enabled for an existing project; create a new project/);
  // Refused like every rule: on the project's audit record, and the project as it was.
  for (const p of [cmek, plain]) {
    const events = (await server.api('GET', `/api/v1/projects/${p.id}/audit-events`)).json.items;
    const refused = events.filter((e) => e.action === 'project.update' && e.result === 'failure');
    assert.equal(refused.length, 1, JSON.stringify(events.slice(-3)));
    assert.match(refused[0].message, /^CMEK cannot be/);
    assert.equal((await server.api('GET', `/api/v1/projects/${p.id}`)).json.cmek_enabled, p === cmek);
  }
  const m = (await server.api('POST', `/api/v1/projects/${plain.id}/members`, { name: 'owner-of-one', role: 'project_owner' })).json;
  // Creating projects at all needs the organization owner or the project_creator role.
  await expectError('POST', '/api/v1/projects', { name: 'members-own' }, 403, /needs the organization owner role or the organization-level project_creator role/, m.token);
  assert.equal((await server.api('PATCH', `/api/v1/users/${m.user_id}`, { project_creator: true })).status, 200);
  await expectError('POST', '/api/v1/projects', { name: 'x', cmek_enabled: true }, 403, /only an organization owner can create a CMEK-enabled project/, m.token);
  const own = await server.api('POST', '/api/v1/projects', { name: 'members-own' }, m.token);
  assert.equal(own.status, 201, 'a project_creator may create a project without CMEK');
});

test('rule: key providers are azure-key-vault and aws-kms, in CMEK projects only', async () => {
  await expectError('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'gcp-kms', region: 'us-east1' }, 400, /provider must be azure-key-vault or aws-kms/);
  await expectError('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'escrow', region: 'eastus' }, 400, /provider must be azure-key-vault or aws-kms/);
  await expectError('POST', `/api/v1/projects/${plain.id}/encryption-keys`, { provider: 'aws-kms', region: 'us-east-1', aws: { key_arn: 'arn:aws:kms:us-east-1:111122223333:key/abcd' } }, 409, /created without CMEK, and CMEK cannot be enabled later/);
  await expectError('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'aws-kms', region: 'us-east-1', aws: { key_arn: 'arn:aws:kms:eu-west-1:111122223333:key/abcd' } }, 400, /ARN is in region eu-west-1 but the key is for region us-east-1/);
  await expectError('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'azure-key-vault', region: 'eastus' }, 400, /field 'provider_config' is required: the azure-key-vault settings \{key_vault_name, managed_hsm_name, key_name_prefix/);
  await expectError('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv', key_name_prefix: 'p' } }, 400, /key_vault_name must be 3-24 characters/);
  const aws = await server.api('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'aws-kms', region: 'us-east-1', aws: { key_arn: 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab' } });
  assert.equal(aws.status, 201);
  const statement = aws.json.setup.key_policy.Statement[0];
  assert.deepEqual(statement.Action, ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey']);
  assert.match(statement.Principal.AWS, /^arn:aws:iam::\d{12}:role\/keyward-service$/);
});

test('kms providers: the registry lists each provider with its fields and regions; provider_config or its alias carries the settings', async () => {
  const list = await server.api('GET', '/api/v1/kms-providers');
  assert.equal(list.status, 200, list.text);
  const byName = Object.fromEntries(list.json.items.map((p) => [p.name, p]));
  assert.deepEqual(Object.keys(byName), ['azure-key-vault', 'aws-kms'], 'escrow is the service\'s own key, not offered');
  assert.equal(byName['azure-key-vault'].display_name, 'Azure Key Vault');
  assert.equal(byName['azure-key-vault'].legacy_field, 'azure');
  assert.deepEqual(byName['azure-key-vault'].config_fields.map((f) => f.cli_flag),
    ['--key-vault-name', '--managed-hsm-name', '--key-name-prefix', '--subscription-id', '--resource-group']);
  assert.deepEqual(byName['aws-kms'].config_fields.map((f) => [f.name, f.required]), [['key_arn', true]]);
  assert.ok(byName['aws-kms'].regions.includes('us-east-1') && byName['azure-key-vault'].regions.includes('eastus'));
  assert.equal(typeof byName['aws-kms'].configured, 'boolean');
  assert.equal((await server.api('GET', '/api/v1/kms-providers', undefined, 'kw_not-a-token')).status, 401);

  const base = `/api/v1/projects/${cmek.id}/encryption-keys`;
  const arn = 'arn:aws:kms:ap-south-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  await expectError('POST', base, { provider: 'aws-kms', region: 'ap-south-1', provider_config: { key_arn: 'nope' } }, 400, /^provider_config\.key_arn must be a KMS key ARN/);
  await expectError('POST', base, { provider: 'aws-kms', region: 'ap-south-1', provider_config: { key_arn: arn, colour: 1 } }, 400, /unknown field 'provider_config\.colour'/);
  await expectError('POST', base, { provider: 'aws-kms', region: 'ap-south-1', provider_config: { key_arn: arn }, aws: { key_arn: arn } }, 400, /give the provider's settings once/);
  await expectError('POST', base, { provider: 'azure-key-vault', region: 'eastus', aws: { key_arn: arn } }, 400, /field 'aws' does not go with provider azure-key-vault/);
  const created = await server.api('POST', base, { provider: 'aws-kms', region: 'ap-south-1', provider_config: { key_arn: arn } });
  assert.equal(created.status, 201, created.text);
  assert.deepEqual(created.json.config, { key_arn: arn });
  assert.match(created.json.setup.text, /add this statement to the key policy/);
  const other = arn.replace('1234abcd', '5678abcd');
  const patched = await server.api('PATCH', `${base}/${created.json.id}`, { provider_config: { key_arn: other } });
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.json.key_name, other);
  await expectError('PATCH', `${base}/${created.json.id}`, { provider_config: { key_vault_name: 'kv-x' } }, 400, /unknown field 'provider_config\.key_vault_name'/);
  assert.equal((await server.api('DELETE', `${base}/${created.json.id}`)).status, 200);
});

test('rule: one key per provider and region; 50 parallel creates, exactly one wins', async () => {
  const body = { provider: 'azure-key-vault', region: 'northeurope', azure: { key_vault_name: 'kv-race', key_name_prefix: 'race' } };
  const results = await Promise.all(Array.from({ length: 50 }, () => server.api('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, body)));
  const statuses = results.map((r) => r.status).sort();
  assert.equal(statuses.filter((s) => s === 201).length, 1, statuses.join(','));
  assert.equal(statuses.filter((s) => s === 409).length, 49, statuses.join(','));
  for (const r of results.filter((x) => x.status === 409)) assert.match(r.json.error.message, /already has an encryption key for azure-key-vault in northeurope/);
  const keys = (await server.api('GET', `/api/v1/projects/${cmek.id}/encryption-keys?page_size=500`)).json.items;
  assert.equal(keys.filter((k) => k.region === 'northeurope').length, 1);
});

test('rule: CMEK clusters are dedicated, on aws or azure, in a region with an active key', async () => {
  const url = `/api/v1/projects/${cmek.id}/clusters`;
  await expectError('POST', url, { name: 'a', cloud_provider: 'azure', region: 'eastus2', tier: 'starter' }, 409, /only create dedicated clusters/);
  await expectError('POST', url, { name: 'a', cloud_provider: 'gcp', region: 'us-central1', tier: 'dedicated' }, 409, /only create clusters on aws or azure, not gcp/);
  await expectError('POST', url, { name: 'a', cloud_provider: 'azure', region: 'eastus2', tier: 'dedicated' }, 409, /no encryption key for azure in region eastus2.*keyward key create --project .* --provider azure-key-vault --region eastus2/);
  const pending = (await server.api('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'azure-key-vault', region: 'eastus2', azure: { key_vault_name: 'kv-eastus2', key_name_prefix: 'p' } })).json;
  await expectError('POST', url, { name: 'a', cloud_provider: 'azure', region: 'eastus2', tier: 'dedicated' }, 409, new RegExp(`encryption key ${pending.id} for azure/eastus2 is pending.*keyward key test`));
  await expectError('POST', url, { name: 'a', cloud_provider: 'aws', region: 'us-west-2', tier: 'dedicated' }, 409, /no encryption key for aws in region us-west-2/);
  await activeAzureKey(cmek.id, 'westus');
  const ok = await server.api('POST', url, { name: 'west', cloud_provider: 'azure', region: 'westus', tier: 'dedicated' });
  assert.equal(ok.status, 201);
  await expectError('POST', url, { name: 'west', cloud_provider: 'azure', region: 'westus', tier: 'dedicated' }, 409, /a cluster named 'west' already exists/);
  const starter = await server.api('POST', `/api/v1/projects/${plain.id}/clusters`, { name: 'starter', cloud_provider: 'gcp', region: 'us-central1', tier: 'starter' });
  assert.equal(starter.status, 201, 'projects without CMEK take any tier and cloud, under the escrow key');
});

test('rule: dual-region backup is refused in CMEK projects only', async () => {
  const list = (await server.api('GET', `/api/v1/projects/${cmek.id}/clusters`)).json.items;
  const c = list.find((x) => x.name === 'west');
  const policy = { schedule: 'daily', retention_days: 7, dual_region: { enabled: true, secondary_region: 'eastus' } };
  await expectError('PUT', `/api/v1/clusters/${c.id}/backup-policy`, policy, 409, /dual-region backup is not supported in CMEK-enabled projects; set dual_region.enabled to false/);
  await expectError('PUT', `/api/v1/clusters/${c.id}/backup-policy`, { schedule: 'sometimes', retention_days: 7 }, 400, /schedule must be/);
  await expectError('PUT', `/api/v1/clusters/${c.id}/backup-policy`, { schedule: 'daily', retention_days: 0 }, 400, /retention_days must be between 1 and 3650/);
  const other = (await server.api('GET', `/api/v1/projects/${plain.id}/clusters`)).json.items[0];
  const r = await server.api('PUT', `/api/v1/clusters/${other.id}/backup-policy`, policy);
  assert.equal(r.status, 200);
  assert.equal(r.json.backup_policy.dual_region.enabled, true);
});

test('rule: the cluster state machine answers 409 with the current state', async () => {
  const c = (await server.api('GET', `/api/v1/projects/${plain.id}/clusters`)).json.items[0];
  await expectError('POST', `/api/v1/clusters/${c.id}:resume`, undefined, 409, /cannot resume cluster .*: it is available/);
  assert.equal((await server.api('POST', `/api/v1/clusters/${c.id}:pause`)).json.state, 'paused');
  await expectError('POST', `/api/v1/clusters/${c.id}:pause`, undefined, 409, /cannot pause cluster .*: it is paused/);
  assert.equal((await server.api('DELETE', `/api/v1/clusters/${c.id}`)).json.state, 'deleted');
  await expectError('POST', `/api/v1/clusters/${c.id}:resume`, undefined, 409, /it is deleted/);
  await expectError('DELETE', `/api/v1/clusters/${c.id}`, undefined, 409, /cannot delete cluster .*: it is deleted/);
});

test('roles: viewers read, members operate clusters, only owners manage keys and delete', async () => {
  const viewer = (await server.api('POST', `/api/v1/projects/${cmek.id}/members`, { name: 'vic', role: 'project_viewer' })).json;
  const member = (await server.api('POST', `/api/v1/projects/${cmek.id}/members`, { name: 'meg', role: 'project_member' })).json;
  const c = (await server.api('GET', `/api/v1/projects/${cmek.id}/clusters`)).json.items.find((x) => x.name === 'west');
  assert.equal((await server.api('GET', `/api/v1/clusters/${c.id}`, undefined, viewer.token)).status, 200);
  await expectError('POST', `/api/v1/clusters/${c.id}:pause`, undefined, 403, /your role project_viewer .* needs project_member/, viewer.token);
  await expectError('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'azure-key-vault', region: 'centralus', azure: { key_vault_name: 'kv-x1', key_name_prefix: 'p' } }, 403, /needs project_owner/, member.token);
  await expectError('DELETE', `/api/v1/clusters/${c.id}`, undefined, 403, /needs project_owner/, member.token);
  await expectError('GET', `/api/v1/projects/${plain.id}`, undefined, 404, /does not exist/, member.token);
  await expectError('POST', `/api/v1/projects/${cmek.id}/members`, { name: 'x', role: 'god' }, 400, /role must be project_owner, project_member or project_viewer/);
});

test('bad input: clear 4xx and nothing written', async () => {
  const before = fs.statSync(path.join(dir, 'metadata.db')).size + fs.readdirSync(path.join(dir, 'clusters')).length;
  const url = `/api/v1/projects/${cmek.id}/clusters`;
  await expectError('POST', '/api/v1/projects', '{"name": "broken"', 400, /must be a JSON object/);
  await expectError('POST', '/api/v1/projects', { name: 7 }, 400, /field 'name' must be a string/);
  await expectError('POST', '/api/v1/projects', { name: 'ok', cmek_enabled: 'yes' }, 400, /field 'cmek_enabled' must be true or false/);
  await expectError('POST', '/api/v1/projects', { name: 'ok', owner: 'me' }, 400, /unknown field 'owner'/);
  await expectError('POST', '/api/v1/projects', { name: '../../etc/passwd' }, 400, /project name must be/);
  await expectError('POST', url, { name: '..', cloud_provider: 'azure', region: 'westus', tier: 'dedicated' }, 400, /cluster name must be/);
  await expectError('POST', url, { name: 'ok', cloud_provider: 'azure', region: '../x', tier: 'dedicated' }, 400, /region must be/);
  await expectError('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-good', key_name_prefix: '../x' } }, 400, /key_name_prefix/);
  await expectError('POST', `/api/v1/projects/${cmek.id}/encryption-keys`, { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-good', key_name_prefix: 'x', extra: 1 } }, 400, /unknown field 'azure.extra'/);
  await expectError('POST', '/api/v1/projects', { name: 'x'.repeat(2 << 20) }, 413, /too large/);
  await expectError('GET', '/api/v1/projects/..%2f..%2fetc', undefined, 404, /no route/);
  await expectError('GET', '/api/v1/projects?page_size=0', undefined, 400, /page_size must be a number from 1 to 500/);
  await expectError('GET', '/api/v1/projects', undefined, 401, /missing bearer token/, null);
  await expectError('GET', '/api/v1/projects', undefined, 401, /invalid or expired token/, 'kw_forged');
  const short = (await server.api('POST', `/api/v1/projects/${cmek.id}/members`, { name: 'brief', role: 'project_viewer', token_ttl_seconds: 5 })).json;
  // 5 s, not 1: under ASan on a loaded machine the first use can come a second or more later.
  assert.equal((await server.api('GET', `/api/v1/projects/${cmek.id}`, undefined, short.token)).status, 200);
  await sleep(6100);
  await expectError('GET', `/api/v1/projects/${cmek.id}`, undefined, 401, /invalid or expired token/, short.token);
  const names = (await server.api('GET', '/api/v1/projects?page_size=500')).json.items.map((p) => p.name);
  assert.ok(!names.includes('broken') && !names.includes('ok'), names.join(','));
  assert.equal(fs.readdirSync(path.join(dir, 'clusters')).filter((c) => fs.readdirSync(path.join(dir, 'clusters', c)).length === 0).length, 0);
  assert.ok(before > 0);
});

test('idempotency keys replay the first answer without its one-time secret; pagination pages', async () => {
  const headers = { 'Idempotency-Key': 'create-once-1' };
  const body = { name: 'idem', cloud_provider: 'aws', region: 'us-east-1', tier: 'starter' };
  const first = await server.api('POST', `/api/v1/projects/${plain.id}/clusters`, body, server.token, headers);
  const again = await server.api('POST', `/api/v1/projects/${plain.id}/clusters`, body, server.token, headers);
  assert.equal(first.status, 201);
  assert.equal(again.status, 201);
  assert.equal(again.json.id, first.json.id);
  assert.equal(again.json.password, undefined);
  assert.equal(again.json.secret_shown_once, true);
  const page1 = (await server.api('GET', '/api/v1/projects?page_size=2')).json;
  assert.equal(page1.items.length, 2);
  const page2 = (await server.api('GET', `/api/v1/projects?page_size=2&page_token=${page1.next_page_token}`)).json;
  assert.ok(page2.items.length >= 1);
  assert.notEqual(page2.items[0].id, page1.items[0].id);
});

test('the OpenAPI document describes exactly the routes the server answers', async () => {
  const served = (await server.api('GET', '/api/v1/openapi.json', undefined, null)).json;
  const onDisk = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'openapi.json'), 'utf8'));
  assert.deepEqual(served, onDisk);
  const documented = [];
  for (const [p, ops] of Object.entries(onDisk.paths)) {
    for (const m of ['get', 'post', 'put', 'patch', 'delete']) if (ops[m]) documented.push(`${m.toUpperCase()} ${p}`);
  }
  for (const route of documented) {
    const [method, p] = route.split(' ');
    const url = p.replace(/\{[a-z_]+\}/g, 'x-probe');
    const r = await server.api(method, url, method === 'GET' || method === 'DELETE' ? undefined : {});
    assert.ok(!(r.status === 404 && /no route/.test(r.text)), `documented but not served: ${route}`);
  }
  // The probe of POST /tokens/owner:rotate really rotated the owner token: take the new one.
  server.token = fs.readFileSync(path.join(dir, 'owner.token'), 'utf8').trim();
  for (const [method, p] of [['GET', '/api/v1/undocumented'], ['POST', '/api/v1/clusters/x:explode'], ['PUT', '/api/v1/projects/x']]) {
    const r = await server.api(method, p, method === 'GET' ? undefined : {});
    // 405: the path is known, the method is not served on it.
    assert.ok(r.status === 404 || r.status === 405, `${method} ${p} is served but not documented`);
  }
});

test('key records: fixed or dropped while no cluster uses them, by owners only, over the API and the CLI', async () => {
  const base = `/api/v1/projects/${cmek.id}/encryption-keys`;
  await expectError('POST', base, { provider: 'azure-key-vault', region: 'eastu', azure: { key_vault_name: 'kv-t', key_name_prefix: 'p' } }, 400, /unknown Azure region 'eastu'; did you mean eastus, eastus2\?/);
  await expectError('POST', `/api/v1/projects/${cmek.id}/clusters`, { name: 'typo', cloud_provider: 'aws', region: 'us-eest-1', tier: 'dedicated' }, 400, /unknown AWS region 'us-eest-1'; did you mean us-east-1/);
  const typo = (await server.api('POST', base, { provider: 'azure-key-vault', region: 'uksouth', azure: { key_vault_name: 'kv-typo', key_name_prefix: 'p' } })).json;
  const member = (await server.api('POST', `/api/v1/projects/${cmek.id}/members`, { name: 'kim', role: 'project_member' })).json;
  await expectError('PATCH', `${base}/${typo.id}`, { azure: { key_vault_name: 'kv-fixed' } }, 403, /needs project_owner/, member.token);
  await expectError('DELETE', `${base}/${typo.id}`, undefined, 403, /needs project_owner/, member.token);
  await expectError('PATCH', `${base}/${typo.id}`, { region: 'ukwest', azure: { key_vault_name: 'kv-fixed' } }, 400, /region of key record .* cannot change; create a new key record/);
  await expectError('PATCH', `${base}/${typo.id}`, { azure: { key_vault_name: 'kv' } }, 400, /key_vault_name must be 3-24 characters/);

  const fixed = server.cli(['key', 'update', '--project', cmek.id, typo.id, '--key-vault-name', 'kv-fixed', '--key-name-prefix', 'fixed', '--output', 'json']);
  assert.equal(fixed.code, 0, fixed.stderr);
  const patched = JSON.parse(fixed.stdout);
  assert.equal(patched.state, 'pending');
  assert.match(patched.key_name, /^fixed-[0-9a-f]{8}$/);
  assert.match(patched.status_message, /test it again/);
  assert.match(patched.setup.key_vault_url, /kv-fixed/);

  fake.createKey(patched.key_name, { region: 'uksouth', granted: true });
  assert.equal((await server.api('POST', `${base}/${typo.id}:test`)).json.state, 'active');
  const c = (await server.api('POST', `/api/v1/projects/${cmek.id}/clusters`, { name: 'uk', cloud_provider: 'azure', region: 'uksouth', tier: 'dedicated' })).json;
  await expectError('PATCH', `${base}/${typo.id}`, { azure: { key_name_prefix: 'other' } }, 409, new RegExp(`used by cluster uk \\(${c.id}, available\\)`));
  assert.equal((await server.api('POST', `/api/v1/clusters/${c.id}:pause`)).json.state, 'paused');
  await expectError('DELETE', `${base}/${typo.id}`, undefined, 409, new RegExp(`used by cluster uk \\(${c.id}, paused\\).*keyward cluster delete ${c.id}`));
  const refused = server.cli(['key', 'delete', '--project', cmek.id, typo.id]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /\(HTTP 409\)/);

  assert.equal((await server.api('DELETE', `/api/v1/clusters/${c.id}`)).json.state, 'deleted');
  const gone = server.cli(['key', 'delete', '--project', cmek.id, typo.id]);
  assert.equal(gone.code, 0, gone.stderr);
  assert.match(gone.stdout, /deleted; nothing changed in your KMS/);
  await expectError('GET', `${base}/${typo.id}`, undefined, 404, /does not exist/);
  const again = await server.api('POST', base, { provider: 'azure-key-vault', region: 'uksouth', azure: { key_vault_name: 'kv-again', key_name_prefix: 'p' } });
  assert.equal(again.status, 201, again.text);

  const escrow = (await server.api('GET', `/api/v1/projects/${plain.id}/encryption-keys`)).json.items[0];
  await expectError('DELETE', `/api/v1/projects/${plain.id}/encryption-keys/${escrow.id}`, undefined, 409, /escrow key .* cannot be changed or deleted/);
});

test('audit: a refused attempt (403) is an audit event naming the user, the action and the resource', async () => {
  const viewer = (await server.api('POST', `/api/v1/projects/${cmek.id}/members`, { name: 'vera', role: 'project_viewer' })).json;
  const c = (await server.api('GET', `/api/v1/projects/${cmek.id}/clusters`)).json.items.find((x) => x.name === 'west');
  await expectError('POST', `/api/v1/clusters/${c.id}:pause`, undefined, 403, /your role project_viewer/, viewer.token);
  const listed = server.cli(['audit', 'list', '--project', cmek.id, '--output', 'json']);
  assert.equal(listed.code, 0, listed.stderr);
  const events = JSON.parse(listed.stdout);
  const denied = events.filter((e) => e.action === 'cluster.pause' && e.actor.includes(viewer.user_id));
  assert.equal(denied.length, 1, JSON.stringify(events.slice(-5)));
  assert.equal(denied[0].result, 'failure');
  assert.equal(denied[0].target, c.id);
  assert.match(denied[0].message, /^denied: your role project_viewer/);
  assert.ok(!listed.stdout.includes(viewer.token), 'no token in the audit log');
  assert.equal((await server.api('GET', `/api/v1/clusters/${c.id}`)).json.state, 'available');
});
