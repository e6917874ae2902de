// The official AWS SDK (@aws-sdk/client-kms from npm) against keyward-kms-emulator's AWS KMS
// endpoint: if it accepts the emulator (SigV4, JSON 1.1, error shapes, retries, clock-skew
// correction), the emulator speaks AWS KMS's real wire protocol. Run via conformance/run.mjs.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import https from 'node:https';
import { after, before, test } from 'node:test';
import {
  KMSClient, CreateKeyCommand, DescribeKeyCommand, ListKeysCommand, EncryptCommand, DecryptCommand,
  GenerateDataKeyCommand, ReEncryptCommand, DisableKeyCommand, EnableKeyCommand, CreateAliasCommand,
  ListAliasesCommand, EnableKeyRotationCommand, GetKeyRotationStatusCommand, RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand, CancelKeyDeletionCommand, PutKeyPolicyCommand, GetKeyPolicyCommand,
} from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Emulator } from './emulator.mjs';

const emu = new Emulator();
let admin;  // the customer's key administrator (account A)
let other;  // keyward's principal (account B)

before(async () => {
  await emu.start(process.env.KEYWARD_EMULATOR_STATE_DIR);
  admin = await emu.awsPrincipal('kms-admin');
  other = await emu.awsPrincipal('role/keyward-service');
  assert.notEqual(admin.account_id, other.account_id);
});
after(async () => { await emu.stop(); });

function kms(p, { region = 'us-east-1', secret, ...extra } = {}) {
  return new KMSClient({
    region, endpoint: emu.info.aws_endpoint,
    credentials: { accessKeyId: p.access_key_id, secretAccessKey: secret ?? p.secret_access_key, ...(p.session_token ? { sessionToken: p.session_token } : {}) },
    // The emulator's CA on this client's agent only (not the process's trust store).
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: emu.ca, keepAlive: false }) }),
    ...extra,
  });
}
async function rejects(promise, name, pattern) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    if (pattern) assert.match(e.message ?? '', pattern);
    return true;
  });
}
const ctx = { cluster_id: 'c-1', project_id: 'p-1' };

test('CreateKey, DescribeKey, ListKeys: a symmetric key in the caller\'s account and region', async () => {
  const c = kms(admin);
  const { KeyMetadata: m } = await c.send(new CreateKeyCommand({ Description: 'sdk key' }));
  assert.match(m.Arn, new RegExp(`^arn:aws:kms:us-east-1:${admin.account_id}:key/${m.KeyId}$`));
  assert.equal(m.KeySpec, 'SYMMETRIC_DEFAULT');
  assert.equal(m.KeyUsage, 'ENCRYPT_DECRYPT');
  assert.equal(m.KeyState, 'Enabled');
  assert.ok(m.CreationDate instanceof Date);
  const d = (await c.send(new DescribeKeyCommand({ KeyId: m.Arn }))).KeyMetadata;
  assert.equal(d.KeyId, m.KeyId);
  assert.equal(d.Enabled, true);
  assert.deepEqual(d.EncryptionAlgorithms, ['SYMMETRIC_DEFAULT']);
  const listed = (await c.send(new ListKeysCommand({}))).Keys.map((k) => k.KeyId);
  assert.ok(listed.includes(m.KeyId));
  // Keys are regional: the same ARN from another region is not found.
  await rejects(kms(admin, { region: 'us-west-2' }).send(new DescribeKeyCommand({ KeyId: m.Arn })), 'NotFoundException');
  await rejects(c.send(new DescribeKeyCommand({ KeyId: crypto.randomUUID() })), 'NotFoundException', /does not exist/);
});

test('Encrypt/Decrypt bind the encryption context; GenerateDataKey; ReEncrypt', async () => {
  const c = kms(admin);
  const { KeyMetadata: m } = await c.send(new CreateKeyCommand({}));
  const secret = crypto.randomBytes(32);
  const enc = await c.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: secret, EncryptionContext: ctx }));
  assert.equal(enc.KeyId, m.Arn);
  assert.equal(enc.EncryptionAlgorithm, 'SYMMETRIC_DEFAULT');
  const dec = await c.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctx }));
  assert.deepEqual(Buffer.from(dec.Plaintext), secret);
  assert.equal(dec.KeyId, m.Arn);
  await rejects(c.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { ...ctx, cluster_id: 'c-2' } })), 'InvalidCiphertextException');
  await rejects(c.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob })), 'InvalidCiphertextException');
  const tampered = Buffer.from(enc.CiphertextBlob); tampered[tampered.length - 1] ^= 1;
  await rejects(c.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: ctx })), 'InvalidCiphertextException');
  // Another key named in the request: IncorrectKeyException.
  const { KeyMetadata: m2 } = await c.send(new CreateKeyCommand({}));
  await rejects(c.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctx, KeyId: m2.KeyId })), 'IncorrectKeyException');

  const dk = await c.send(new GenerateDataKeyCommand({ KeyId: m.KeyId, KeySpec: 'AES_256', EncryptionContext: ctx }));
  assert.equal(dk.Plaintext.length, 32);
  assert.deepEqual((await c.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctx }))).Plaintext, dk.Plaintext);

  const re = await c.send(new ReEncryptCommand({ CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: ctx, DestinationKeyId: m2.KeyId, DestinationEncryptionContext: { x: 'y' } }));
  assert.equal(re.SourceKeyId, m.Arn);
  assert.equal(re.KeyId, m2.Arn);
  assert.deepEqual(Buffer.from((await c.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { x: 'y' } }))).Plaintext), secret);
});

test('DisableKey/EnableKey, ScheduleKeyDeletion/CancelKeyDeletion: key state refusals', async () => {
  const c = kms(admin);
  const { KeyMetadata: m } = await c.send(new CreateKeyCommand({}));
  const enc = await c.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('x'), EncryptionContext: ctx }));
  await c.send(new DisableKeyCommand({ KeyId: m.KeyId }));
  assert.equal((await c.send(new DescribeKeyCommand({ KeyId: m.KeyId }))).KeyMetadata.KeyState, 'Disabled');
  await rejects(c.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctx })), 'DisabledException', /is disabled/);
  await c.send(new EnableKeyCommand({ KeyId: m.KeyId }));
  assert.equal((await c.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctx }))).Plaintext.length, 1);
  const sched = await c.send(new ScheduleKeyDeletionCommand({ KeyId: m.KeyId, PendingWindowInDays: 7 }));
  assert.equal(sched.KeyState, 'PendingDeletion');
  assert.ok(sched.DeletionDate instanceof Date);
  await rejects(c.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('x') })), 'KMSInvalidStateException', /pending deletion/);
  await rejects(c.send(new ScheduleKeyDeletionCommand({ KeyId: m.KeyId, PendingWindowInDays: 3 })), 'ValidationException');
  await c.send(new CancelKeyDeletionCommand({ KeyId: m.KeyId }));
  assert.equal((await c.send(new DescribeKeyCommand({ KeyId: m.KeyId }))).KeyMetadata.KeyState, 'Disabled');
});

test('rotation: EnableKeyRotation/GetKeyRotationStatus; RotateKeyOnDemand keeps old ciphertexts decryptable', async () => {
  const c = kms(admin);
  const { KeyMetadata: m } = await c.send(new CreateKeyCommand({}));
  assert.equal((await c.send(new GetKeyRotationStatusCommand({ KeyId: m.KeyId }))).KeyRotationEnabled, false);
  await c.send(new EnableKeyRotationCommand({ KeyId: m.KeyId, RotationPeriodInDays: 90 }));
  const status = await c.send(new GetKeyRotationStatusCommand({ KeyId: m.KeyId }));
  assert.equal(status.KeyRotationEnabled, true);
  assert.equal(status.RotationPeriodInDays, 90);
  const before = await c.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('old'), EncryptionContext: ctx }));
  const rotated = await c.send(new RotateKeyOnDemandCommand({ KeyId: m.Arn }));
  assert.equal(rotated.KeyId, m.KeyId);
  const afterRot = await c.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('new'), EncryptionContext: ctx }));
  assert.equal(Buffer.from((await c.send(new DecryptCommand({ CiphertextBlob: before.CiphertextBlob, EncryptionContext: ctx }))).Plaintext).toString(), 'old');
  assert.equal(Buffer.from((await c.send(new DecryptCommand({ CiphertextBlob: afterRot.CiphertextBlob, EncryptionContext: ctx }))).Plaintext).toString(), 'new');
});

test('aliases: CreateAlias, the alias as KeyId, ListAliases; duplicates refused', async () => {
  const c = kms(admin);
  const { KeyMetadata: m } = await c.send(new CreateKeyCommand({}));
  await c.send(new CreateAliasCommand({ AliasName: 'alias/keyward-sdk', TargetKeyId: m.KeyId }));
  const enc = await c.send(new EncryptCommand({ KeyId: 'alias/keyward-sdk', Plaintext: Buffer.from('a'), EncryptionContext: ctx }));
  assert.equal(enc.KeyId, m.Arn);
  const aliasArn = `arn:aws:kms:us-east-1:${admin.account_id}:alias/keyward-sdk`;
  assert.equal((await c.send(new DescribeKeyCommand({ KeyId: aliasArn }))).KeyMetadata.KeyId, m.KeyId);
  const aliases = (await c.send(new ListAliasesCommand({ KeyId: m.KeyId }))).Aliases;
  assert.deepEqual(aliases.map((a) => [a.AliasName, a.AliasArn, a.TargetKeyId]), [['alias/keyward-sdk', aliasArn, m.KeyId]]);
  await rejects(c.send(new CreateAliasCommand({ AliasName: 'alias/keyward-sdk', TargetKeyId: m.KeyId })), 'AlreadyExistsException');
  await rejects(c.send(new EncryptCommand({ KeyId: 'alias/nope', Plaintext: Buffer.from('a') })), 'NotFoundException', /is not found/);
});

test('key policy: another account\'s principal gets in only through a statement naming it', async () => {
  const c = kms(admin);
  const { KeyMetadata: m } = await c.send(new CreateKeyCommand({}));
  const enc = await c.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('p'), EncryptionContext: ctx }));
  const k = kms(other);
  await rejects(k.send(new DescribeKeyCommand({ KeyId: m.Arn })), 'AccessDeniedException',
    new RegExp(`User: arn:aws:iam::${other.account_id}:role/keyward-service is not authorized to perform: kms:DescribeKey`));
  const policy = JSON.parse((await c.send(new GetKeyPolicyCommand({ KeyId: m.KeyId, PolicyName: 'default' }))).Policy);
  policy.Statement.push({ Sid: 'AllowKeyward', Effect: 'Allow', Principal: { AWS: other.arn },
    Action: ['kms:Encrypt', 'kms:DescribeKey', 'kms:GenerateDataKey*'], Resource: '*' });
  await c.send(new PutKeyPolicyCommand({ KeyId: m.KeyId, PolicyName: 'default', Policy: JSON.stringify(policy) }));
  assert.equal((await k.send(new DescribeKeyCommand({ KeyId: m.Arn }))).KeyMetadata.KeyId, m.KeyId);
  await k.send(new EncryptCommand({ KeyId: m.Arn, Plaintext: Buffer.from('q'), EncryptionContext: ctx }));
  // kms:Decrypt is missing from the statement: refused naming that action.
  await rejects(k.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctx })), 'AccessDeniedException', /kms:Decrypt/);
  // A policy that would lock the administrator out is refused.
  await rejects(c.send(new PutKeyPolicyCommand({ KeyId: m.KeyId, PolicyName: 'default',
    Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: other.arn }, Action: 'kms:Decrypt', Resource: '*' }] }) })),
  'MalformedPolicyDocumentException');
});

test('SigV4: a wrong secret key is refused with the SDK\'s own signature error; unknown keys, bad regions and skewed clocks too', async () => {
  await rejects(kms(admin, { secret: 'not-the-secret' }).send(new ListKeysCommand({})), 'InvalidSignatureException',
    /The request signature we calculated does not match the signature you provided/);
  await rejects(kms({ access_key_id: 'AKIANOSUCHKEY0000000', secret_access_key: 'x' }).send(new ListKeysCommand({})),
    'UnrecognizedClientException', /security token included in the request is invalid/);
  await rejects(kms(admin, { region: 'mars-north-1' }).send(new ListKeysCommand({})), 'InvalidSignatureException', /valid region/);
  // A clock an hour behind: refused as expired; with retries the SDK corrects its clock from the
  // reply's Date header and the call succeeds, as against AWS.
  await rejects(kms(admin, { systemClockOffset: -3600_000, maxAttempts: 1 }).send(new ListKeysCommand({})), 'InvalidSignatureException', /Signature expired/);
  const skewed = kms(admin, { systemClockOffset: -3600_000 });
  assert.ok(Array.isArray((await skewed.send(new ListKeysCommand({}))).Keys));
});

test('temporary credentials: a session token is signed and checked', async () => {
  const r = await emu.request('POST', `${emu.info.admin_url}/aws/sessions`, { access_key_id: admin.access_key_id });
  assert.equal(r.status, 201);
  const session = r.json;
  assert.match(session.access_key_id, /^ASIA/);
  assert.ok(Array.isArray((await kms(session).send(new ListKeysCommand({}))).Keys));
  await rejects(kms({ ...session, session_token: undefined }).send(new ListKeysCommand({})), 'UnrecognizedClientException');
});

test('throttling: the SDK retries ThrottlingException and succeeds; counters count each attempt', async () => {
  const c = kms(admin);
  const { KeyMetadata: m } = await c.send(new CreateKeyCommand({}));
  await emu.fault({ operation: 'aws.describekey', kind: '429', count: 2 });
  const before = (await emu.counters())['aws.describekey'] || 0;
  assert.equal((await c.send(new DescribeKeyCommand({ KeyId: m.KeyId }))).KeyMetadata.KeyId, m.KeyId);
  assert.equal((await emu.counters())['aws.describekey'] - before, 3, 'two throttled attempts, then success');
  await emu.fault({ operation: 'aws.describekey', kind: '500', count: 5 });
  await rejects(kms(admin, { maxAttempts: 1 }).send(new DescribeKeyCommand({ KeyId: m.KeyId })), 'KMSInternalException');
  await emu.clearFaults();
});

test('cross-check: keyward\'s C++ provider and the official SDK decrypt each other\'s ciphertexts; the C++ client sees the key policy', async () => {
  const { spawnSync } = await import('node:child_process');
  const path = await import('node:path');
  const { repoRoot } = await import('../integration/harness.mjs');
  const tool = process.env.KEYWARD_AWS_KMS_TOOL_BIN || path.join(repoRoot, 'build', 'tests', 'keyward-aws-kms-tool');
  const c = kms(admin);
  const { KeyMetadata: m } = await c.send(new CreateKeyCommand({}));
  const policy = JSON.parse((await c.send(new GetKeyPolicyCommand({ KeyId: m.KeyId, PolicyName: 'default' }))).Policy);
  policy.Statement.push({ Sid: 'AllowKeywardToUseTheKey', Effect: 'Allow', Principal: { AWS: other.arn },
    Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:DescribeKey'], Resource: '*' });
  await c.send(new PutKeyPolicyCommand({ KeyId: m.KeyId, PolicyName: 'default', Policy: JSON.stringify(policy) }));
  const env = { ...process.env, AWS_ACCESS_KEY_ID: other.access_key_id, AWS_SECRET_ACCESS_KEY: other.secret_access_key,
    KW_AWS_ENDPOINT: emu.info.aws_endpoint, KW_CA_FILE: emu.info.ca_file, AWS_PROFILE: '', HOME: '/nonexistent' };
  const run = (...args) => spawnSync(tool, args, { env, encoding: 'utf8' });
  const context = { keyward_context: 'c-42', keyward_project: 'p-7' };
  const d = run('describe', m.Arn);
  assert.equal(d.status, 0, d.stderr);
  assert.equal(d.stdout.trim(), '1 1 us-east-1');
  // C++ encrypts, the SDK decrypts with the same context (and not with another).
  const dek = crypto.randomBytes(32);
  const w = run('wrap', m.Arn, 'p-7', 'c-42', dek.toString('hex'));
  assert.equal(w.status, 0, w.stderr);
  const blob = Buffer.from(w.stdout.trim(), 'hex');
  assert.deepEqual(Buffer.from((await c.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: context }))).Plaintext), dek);
  await rejects(c.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { ...context, keyward_context: 'c-43' } })), 'InvalidCiphertextException');
  // The SDK encrypts, C++ decrypts; under another cluster id C++ is refused.
  const other2 = crypto.randomBytes(32);
  const enc = await c.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: other2, EncryptionContext: context }));
  const u = run('unwrap', m.Arn, 'p-7', 'c-42', Buffer.from(enc.CiphertextBlob).toString('hex'));
  assert.equal(u.status, 0, u.stderr);
  assert.equal(u.stdout.trim(), other2.toString('hex'));
  const wrongCtx = run('unwrap', m.Arn, 'p-7', 'c-43', Buffer.from(enc.CiphertextBlob).toString('hex'));
  assert.equal(wrongCtx.status, 1);
  assert.match(wrongCtx.stderr, /refused to decrypt \(InvalidCiphertextException\)/);
  // Faults reach the C++ client as on the Azure side: 503s are retried, a 200 it cannot read is
  // a transient failure (never a crash), and per-key counters see each attempt.
  const perKey = `aws.describekey:${m.KeyId}`;
  const c0 = (await emu.counters())[perKey] || 0;
  await emu.fault({ operation: 'aws.describekey', kind: '503', count: 2 });
  const retried = run('describe', m.Arn);
  assert.equal(retried.status, 0, retried.stderr);
  assert.equal((await emu.counters())[perKey] - c0, 1, 'faulted attempts never reach the key');
  await emu.fault({ operation: 'aws.describekey', kind: 'garbage', count: 1 });
  const garbage = run('describe', m.Arn);
  assert.equal(garbage.status, 1);
  assert.match(garbage.stderr, /reply keyward cannot read/);
  await emu.clearFaults();
  // Decrypt removed from the statement: the C++ error names the action and the statement.
  policy.Statement[policy.Statement.length - 1].Action = ['kms:Encrypt', 'kms:DescribeKey'];
  await c.send(new PutKeyPolicyCommand({ KeyId: m.KeyId, PolicyName: 'default', Policy: JSON.stringify(policy) }));
  const denied = run('unwrap', m.Arn, 'p-7', 'c-42', Buffer.from(enc.CiphertextBlob).toString('hex'));
  assert.equal(denied.status, 1);
  assert.match(denied.stderr, /may not perform kms:Decrypt on AWS KMS key .*add kms:Decrypt to the Action list of the key policy statement "AllowKeywardToUseTheKey"/);
  // Disabled: the C++ error says so and how to fix it.
  await c.send(new DisableKeyCommand({ KeyId: m.KeyId }));
  const disabled = run('wrap', m.Arn, 'p-7', 'c-42', dek.toString('hex'));
  assert.match(disabled.stderr, /is disabled in AWS KMS .*aws kms enable-key/);
  // A wrong secret: Unauthenticated, naming the credentials.
  const bad = spawnSync(tool, ['describe', m.Arn], { env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' }, encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /refused keyward's credentials \(InvalidSignatureException/);
});
