// The reference flow for AWS end to end: the product `keyward serve` (its C++ AWS KMS client,
// SigV4, credentials from the environment, libcurl) talks to keyward-kms-emulator's AWS KMS,
// while the customer's side is played with the official AWS SDK (@aws-sdk/client-kms). The key
// policy keyward generates is what lets it in: keyward's principal lives in another account.
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, test } from 'node:test';
import {
  KMSClient, CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, GetKeyPolicyCommand, PutKeyPolicyCommand,
  RotateKeyOnDemandCommand,
} from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import Redis from 'ioredis';
import { Emulator } from './emulator.mjs';
import { Server, sleep, splitEndpoint, tempDir } from '../integration/harness.mjs';

const emu = new Emulator();
let admin;     // the customer's key administrator (account A)
let keyward;   // keyward's own principal (account B)
let server;
let kms;

before(async () => {
  await emu.start(process.env.KEYWARD_EMULATOR_STATE_DIR);
  admin = await emu.awsPrincipal('kms-admin');
  keyward = await emu.awsPrincipal('role/keyward-service');
  kms = new KMSClient({ region: 'us-east-1', endpoint: emu.info.aws_endpoint,
    credentials: { accessKeyId: admin.access_key_id, secretAccessKey: admin.secret_access_key },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: emu.ca, keepAlive: false }) }) });
  const home = tempDir('kw-home-');
  server = new Server(tempDir(), ['--aws-endpoint-url', emu.info.aws_endpoint, '--aws-ca-file', emu.info.ca_file,
    '--aws-principal-arn', keyward.arn, '--key-check-interval', '3600'],
  { env: { AWS_ACCESS_KEY_ID: keyward.access_key_id, AWS_SECRET_ACCESS_KEY: keyward.secret_access_key, HOME: home } });
  await server.start();
});
after(async () => { await server?.stop('SIGKILL'); await emu.stop(); });

function cli(args) {
  const r = server.cli(args);
  return { ...r, json: (() => { try { return JSON.parse(r.stdout); } catch { return null; } })() };
}

// The customer's step: the key's policy keeps their own account's statement and gains the one
// keyward shows (optionally with some actions left out, as a mistaken customer might).
async function applyPolicy(keyId, generated, dropActions = []) {
  const current = JSON.parse((await kms.send(new GetKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default' }))).Policy);
  const statements = current.Statement.filter((s) => s.Sid !== 'AllowKeywardToUseTheKey');
  for (const s of generated.Statement) statements.push({ ...s, Action: s.Action.filter((a) => !dropActions.includes(a)) });
  await kms.send(new PutKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default', Policy: JSON.stringify({ ...current, Statement: statements }) }));
}

test('AWS reference flow: key policy, test, cluster, data, pause, DisableKey, resume refused, EnableKey, resume, rotation', async () => {
  const { KeyMetadata: m } = await kms.send(new CreateKeyCommand({ Description: 'tidb cmek' }));
  const project = cli(['project', 'create', '--name', 'aws-e2e', '--cmek', '--output', 'json']).json;
  const created = cli(['key', 'create', '--project', project.id, '--provider', 'aws-kms', '--region', 'us-east-1', '--key-arn', m.Arn, '--output', 'json']);
  const key = created.json;
  assert.ok(key, created.stderr);
  const policy = key.setup.key_policy;
  assert.equal(key.setup.service_identity.aws_principal_arn, keyward.arn);
  assert.deepEqual(policy.Statement[0].Principal, { AWS: keyward.arn });

  // Before the customer adds the statement: failed, naming the action and the statement.
  let t = cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']).json;
  assert.equal(t.state, 'failed');
  assert.match(t.status_message, /may not perform kms:DescribeKey .*"AllowKeywardToUseTheKey"/);

  // The statement without kms:Decrypt: failed, naming that action.
  await applyPolicy(m.KeyId, policy, ['kms:Decrypt']);
  t = cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']).json;
  assert.equal(t.state, 'failed');
  const unwrap = t.checks.find((c) => c.step === 'unwrap');
  assert.equal(unwrap.ok, false, JSON.stringify(t.checks));
  assert.match(unwrap.message, /may not perform kms:Decrypt .*add kms:Decrypt to the Action list of the key policy statement "AllowKeywardToUseTheKey"/);

  // The statement as generated: active.
  await applyPolicy(m.KeyId, policy);
  t = cli(['key', 'test', '--project', project.id, key.id, '--output', 'json']).json;
  assert.equal(t.state, 'active', JSON.stringify(t.checks));
  assert.match(t.checks.find((c) => c.step === 'region').message, /key ARN region us-east-1 matches/);
  assert.match(t.checks.find((c) => c.step === 'key_operations').message, /SYMMETRIC_DEFAULT/);

  const cluster = cli(['cluster', 'create', '--project', project.id, '--name', 'ledger', '--cloud', 'aws', '--region', 'us-east-1', '--tier', 'dedicated', '--output', 'json']).json;
  assert.equal(cluster.state, 'available');
  const { port } = splitEndpoint(cluster.endpoint);
  let redis = new Redis({ host: '127.0.0.1', port, password: cluster.password, lazyConnect: true });
  await redis.connect();
  for (let i = 0; i < 50; i++) await redis.set(`entry:${i}`, `v${i}`);
  redis.disconnect();

  assert.equal(cli(['cluster', 'pause', cluster.id, '--output', 'json']).json.state, 'paused');
  await kms.send(new DisableKeyCommand({ KeyId: m.KeyId }));
  const refused = cli(['cluster', 'resume', cluster.id]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`encryption key for aws/us-east-1 is disabled in AWS KMS \\(key ${m.Arn}\\); enable it`));
  assert.equal(cli(['cluster', 'get', cluster.id, '--output', 'json']).json.state, 'paused');
  await kms.send(new EnableKeyCommand({ KeyId: m.KeyId }));
  const before = await emu.counters();
  assert.equal(cli(['cluster', 'resume', cluster.id, '--output', 'json']).json.state, 'available');
  const opened = await emu.counters();
  assert.ok((opened['aws.decrypt'] || 0) - (before['aws.decrypt'] || 0) >= 1, 'resume decrypts the dictionary key');
  redis = new Redis({ host: '127.0.0.1', port, password: cluster.password, lazyConnect: true });
  await redis.connect();
  assert.equal(await redis.get('entry:49'), 'v49');
  redis.disconnect();

  // Rotation inside KMS needs nothing from keyward: after a restart the old ciphertext decrypts.
  await kms.send(new RotateKeyOnDemandCommand({ KeyId: m.KeyId }));
  await server.stop('SIGTERM');
  await server.start();
  assert.equal(cli(['cluster', 'get', cluster.id, '--output', 'json']).json.state, 'available');
  redis = new Redis({ host: '127.0.0.1', port, password: cluster.password, lazyConnect: true });
  await redis.connect();
  assert.equal(await redis.get('entry:7'), 'v7');
  redis.disconnect();
});

test('key health: a running cluster under an AWS key goes inaccessible when the key is disabled and comes back when enabled', async () => {
  // A second server whose monitor checks every 2 s (the first checks hourly, keeping its counts exact).
  const fast = new Server(tempDir(), ['--aws-endpoint-url', emu.info.aws_endpoint, '--aws-ca-file', emu.info.ca_file,
    '--aws-principal-arn', keyward.arn, '--key-check-interval', '2', '--key-loss-grace', '8'],
  { env: { AWS_ACCESS_KEY_ID: keyward.access_key_id, AWS_SECRET_ACCESS_KEY: keyward.secret_access_key, HOME: tempDir('kw-home-') } });
  await fast.start();
  try {
    const run = (args) => { const r = fast.cli(args); try { return JSON.parse(r.stdout); } catch { return r; } };
    const { KeyMetadata: m } = await kms.send(new CreateKeyCommand({}));
    const project = run(['project', 'create', '--name', 'aws-health', '--cmek', '--output', 'json']);
    const key = run(['key', 'create', '--project', project.id, '--provider', 'aws-kms', '--region', 'us-east-1', '--key-arn', m.Arn, '--output', 'json']);
    await applyPolicy(m.KeyId, key.setup.key_policy);
    assert.equal(run(['key', 'test', '--project', project.id, key.id, '--output', 'json']).state, 'active');
    const cluster = run(['cluster', 'create', '--project', project.id, '--name', 'live', '--cloud', 'aws', '--region', 'us-east-1', '--tier', 'dedicated', '--output', 'json']);
    assert.equal(cluster.state, 'available');
    const waitFor = async (state, ms) => {
      const start = Date.now();
      let c;
      while (Date.now() - start < ms) {
        c = run(['cluster', 'get', cluster.id, '--output', 'json']);
        if (c.state === state) return c;
        await sleep(200);
      }
      assert.fail(`cluster is ${c.state} (${c.state_message}), not ${state}, after ${ms} ms`);
    };
    await kms.send(new DisableKeyCommand({ KeyId: m.KeyId }));
    const dead = await waitFor('inaccessible', 15000);
    assert.match(dead.state_message, /disabled/);
    await kms.send(new EnableKeyCommand({ KeyId: m.KeyId }));
    await waitFor('available', 15000);
  } finally {
    await fast.stop('SIGTERM');
  }
});

test('web identity: keyward assumes its role through STS, shows the role from GetCallerIdentity in the key policy, and signs with the session token', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const subject = 'system:serviceaccount:keyward:server';
  const role = (await emu.request('POST', `${emu.info.admin_url}/aws/principals`, { name: 'role/keyward-wi', web_identity_subject: subject })).json;
  const token = (await emu.request('POST', `${emu.info.admin_url}/federated-tokens`, { subject, audience: 'sts.amazonaws.com' })).json.token;
  const dir = tempDir('kw-wi-');
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, token, { mode: 0o600 });
  const wi = new Server(tempDir(), ['--aws-endpoint-url', emu.info.aws_endpoint, '--aws-ca-file', emu.info.ca_file, '--key-check-interval', '3600'],
    { env: { AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ROLE_ARN: role.arn, AWS_ROLE_SESSION_NAME: 'keyward-pod',
      AWS_ENDPOINT_URL_STS: emu.info.aws_endpoint, HOME: dir } });
  await wi.start();
  try {
    const run = (args) => { const r = wi.cli(args); try { return JSON.parse(r.stdout); } catch { return r; } };
    const { KeyMetadata: m } = await kms.send(new CreateKeyCommand({}));
    const project = run(['project', 'create', '--name', 'aws-wi', '--cmek', '--output', 'json']);
    const key = run(['key', 'create', '--project', project.id, '--provider', 'aws-kms', '--region', 'us-east-1', '--key-arn', m.Arn, '--output', 'json']);
    // GetCallerIdentity says arn:aws:sts::…:assumed-role/keyward-wi/keyward-pod; the policy names the role.
    assert.equal(key.setup.service_identity.aws_principal_arn, role.arn);
    assert.deepEqual(key.setup.key_policy.Statement[0].Principal, { AWS: role.arn });
    await applyPolicy(m.KeyId, key.setup.key_policy);
    const t = run(['key', 'test', '--project', project.id, key.id, '--output', 'json']);
    assert.equal(t.state, 'active', JSON.stringify(t.checks));
    const c = await emu.counters();
    assert.ok(c['aws.sts.assumerolewithwebidentity'] >= 1 && c['aws.sts.getcalleridentity'] >= 1, JSON.stringify(c));
  } finally {
    await wi.stop('SIGTERM');
  }
});
