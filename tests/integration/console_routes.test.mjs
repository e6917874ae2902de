// The two REST additions the web console's pages stand on: GET /key-management-services (what the
// Create Encryption Key wizard shows before any key record exists) and the audit-events filters
// of the Audit Log page (cluster, key, actor, action, time, newest first).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Server, sleep, tempDir } from './harness.mjs';

let server;
before(async () => { server = await new Server(tempDir()).start(); });
after(async () => { await server.stop(); });

test('key management services: both providers, regions, identity and the setup before a key exists', async () => {
  const r = await server.api('GET', '/api/v1/key-management-services');
  assert.equal(r.status, 200, r.text);
  const [azure, aws] = r.json.items;
  assert.equal(azure.provider, 'azure-key-vault');
  assert.equal(azure.name, 'Azure Key Vault');
  assert.ok(azure.regions.includes('eastus'));
  const appId = azure.service_identity.microsoft_entra_application_id;
  assert.match(appId, /^[0-9a-f-]{36}$/);
  assert.equal(azure.create_service_principal_command, `az ad sp create --id ${appId}`);
  // No Azure credentials here: the generated identity is flagged where it is shown.
  assert.equal(azure.service_identity.placeholder, true);
  assert.match(azure.service_identity.warning, /placeholders/);
  assert.equal(aws.provider, 'aws-kms');
  assert.ok(aws.regions.includes('us-east-1'));
  assert.equal(aws.key_policy.Statement[0].Principal.AWS, aws.service_identity.aws_principal_arn);
  // The same identity a key record's setup shows afterwards.
  const created = await server.api('POST', '/api/v1/projects', { name: 'kms-svc', cmek_enabled: true });
  assert.equal(created.status, 201, created.text);
  const p = created.json;
  const k = await server.api('POST', `/api/v1/projects/${p.id}/encryption-keys`,
    { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-a', key_name_prefix: 'cmek' } });
  assert.equal(k.status, 201, k.text);
  assert.equal(k.json.setup.service_identity.microsoft_entra_application_id, appId);
  assert.equal((await server.api('GET', '/api/v1/key-management-services', undefined, 'not-a-token')).status, 401);
});

test('audit events filter by cluster, key, actor, action and time, newest first on request', async () => {
  const p = (await server.api('POST', '/api/v1/projects', { name: 'audit-f' })).json;
  const member = (await server.api('POST', `/api/v1/projects/${p.id}/members`, { name: 'mia', role: 'project_member' })).json;
  const mk = async (name) => {
    const r = await server.api('POST', `/api/v1/projects/${p.id}/clusters`, { name, cloud_provider: 'aws', region: 'us-east-1', tier: 'starter' });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  const a = await mk('alpha');
  await sleep(5);
  const middle = Date.now();
  await sleep(5);
  const b = await mk('beta');
  assert.equal((await server.api('POST', `/api/v1/clusters/${b.id}:pause`, undefined, member.token)).status, 200);
  const list = async (q) => {
    const r = await server.api('GET', `/api/v1/projects/${p.id}/audit-events?page_size=500&${q}`);
    assert.equal(r.status, 200, r.text);
    return r.json.items.map((e) => `${e.action}:${e.target}`);
  };
  assert.deepEqual(await list(`cluster_id=${a.id}`), [`cluster.create:${a.id}`]);
  assert.deepEqual(await list(`cluster_id=${b.id}`), [`cluster.create:${b.id}`, `cluster.pause:${b.id}`]);
  assert.deepEqual(await list(`actor=mia`), [`cluster.pause:${b.id}`]);
  assert.deepEqual(await list(`actor=${member.user_id}&action=cluster`), [`cluster.pause:${b.id}`]);
  assert.deepEqual(await list(`action=cluster.create&since_ms=${middle}`), [`cluster.create:${b.id}`]);
  assert.deepEqual(await list(`action=cluster.create&until_ms=${middle}`), [`cluster.create:${a.id}`]);
  assert.deepEqual(await list(`action=cluster&order=newest`), [`cluster.pause:${b.id}`, `cluster.create:${b.id}`, `cluster.create:${a.id}`]);
  // The escrow key record of a project without CMEK: every cluster event carries it.
  const escrow = a.encryption_key_id;
  assert.ok(escrow);
  assert.deepEqual(await list(`key_id=${escrow}&action=cluster.create`), [`cluster.create:${a.id}`, `cluster.create:${b.id}`]);
  assert.deepEqual(await list(`key_id=k-doesnotexist`), []);
  for (const bad of ['order=sideways', 'since_ms=soon', `since_ms=${middle}&until_ms=1`, 'actor=']) {
    const r = await server.api('GET', `/api/v1/projects/${p.id}/audit-events?${bad}`);
    assert.equal(r.status, 400, `${bad}: ${r.text}`);
    assert.ok(r.json.error.message.length > 10);
  }
});
