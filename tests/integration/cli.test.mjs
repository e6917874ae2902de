// The command line as people use it: global flags before the command, --version, shell
// completion, names instead of ids, a delete that asks first, deleted clusters out of the way,
// errors in the CLI's own words, and a start-up hint that works as printed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Server, haveCommand, keywardBin, tempDir } from './harness.mjs';

// The server runs with no AWS credentials of any kind (nor any way to reach AWS), whatever the
// machine running the tests has: an AWS key test must then say what keyward serve lacks.
const NO_AWS = {
  AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_SESSION_TOKEN: '', AWS_PROFILE: '',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials', AWS_CONFIG_FILE: '/nonexistent/aws-config',
  AWS_WEB_IDENTITY_TOKEN_FILE: '', AWS_ROLE_ARN: '', AWS_EC2_METADATA_SERVICE_ENDPOINT: '',
  AWS_ENDPOINT_URL_KMS: 'http://127.0.0.1:9', AWS_ENDPOINT_URL_STS: 'http://127.0.0.1:9',
};
let server;
before(async () => { server = await new Server(tempDir(), [], { env: NO_AWS }).start(); });
after(async () => { await server.stop('SIGKILL'); });

// The CLI with nothing from the environment: what a user types is all it gets.
function bare(args) {
  const env = { ...process.env };
  delete env.KEYWARD_SERVER;
  delete env.KEYWARD_TOKEN;
  delete env.KEYWARD_DATA_DIR;
  const r = spawnSync(keywardBin, args, { env, encoding: 'utf8', timeout: 60000, cwd: tempDir() });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('global flags work before the command, and --version answers', () => {
  server.createCluster('global-flags');
  const r = bare(['--server', server.url, '--token', server.token, '--output', 'json', 'cluster', 'list']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).some((c) => c.name === 'global-flags'));
  const eq = bare([`--server=${server.url}`, `--token=${server.token}`, 'cluster', 'list']);
  assert.equal(eq.code, 0, eq.stderr);
  assert.match(eq.stdout, /global-flags/);
  for (const v of [['--version'], ['-V'], ['version']]) {
    const out = bare(v);
    assert.equal(out.code, 0);
    assert.match(out.stdout, /^keyward \d+\.\d+\.\d+\n$/);
  }
  const unknown = bare(['--colour', 'cluster', 'list']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown flag --colour before the command/);
  const dangling = bare(['--token']);
  assert.equal(dangling.code, 2);
  assert.match(dangling.stderr, /--token needs a value/);
});

test('the bash completion script loads and completes nouns, verbs and flags', {
  skip: haveCommand('bash') ? false : 'SKIPPED LOUDLY: bash is not installed',
}, () => {
  const script = `source <("${keywardBin}" completion bash) || exit 9
complete -p keyward || exit 8
COMP_WORDS=(keyward c); COMP_CWORD=1; _keyward; echo "1:\${COMPREPLY[*]}"
COMP_WORDS=(keyward --token T cluster de); COMP_CWORD=4; _keyward; echo "2:\${COMPREPLY[*]}"
COMP_WORDS=(keyward cluster delete x --with); COMP_CWORD=4; _keyward; echo "3:\${COMPREPLY[*]}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /complete -F _keyward keyward/);
  assert.match(r.stdout, /^1:cluster completion$/m);
  assert.match(r.stdout, /^2:delete$/m);
  assert.match(r.stdout, /^3:--with-backups$/m);
  const zsh = bare(['completion', 'zsh']);
  assert.equal(zsh.code, 0);
  assert.match(zsh.stdout, /bashcompinit/);
  const fish = bare(['completion', 'fish']);
  assert.equal(fish.code, 2);
  assert.match(fish.stderr, /choose bash or zsh/);
});

test('projects, clusters and keys answer to their names; --project defaults to your only project', async () => {
  const project = (await server.api('POST', '/api/v1/projects', { name: 'named-things' })).json;
  const byName = server.cli(['project', 'get', 'named-things', '--output', 'json']);
  assert.equal(byName.code, 0, byName.stderr);
  assert.equal(JSON.parse(byName.stdout).id, project.id);

  const created = JSON.parse(server.cli(['cluster', 'create', '--name', 'orders', '--project', 'named-things',
    '--cloud', 'gcp', '--region', 'us-central1', '--tier', 'dedicated', '--output', 'json']).stdout);
  const got = server.cli(['cluster', 'get', 'orders', '--output', 'json']);
  assert.equal(got.code, 0, got.stderr);
  assert.equal(JSON.parse(got.stdout).id, created.id);
  const missing = server.cli(['cluster', 'get', 'no-such-cluster']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no cluster named 'no-such-cluster'/);

  // A second cluster of the same name in another project: the name alone is ambiguous, the
  // project narrows it.
  server.createCluster('orders');
  const ambiguous = server.cli(['cluster', 'get', 'orders']);
  assert.equal(ambiguous.code, 1);
  assert.match(ambiguous.stderr, /2 clusters are named 'orders' \(c-[0-9a-f]{16}, c-[0-9a-f]{16}\); give the id/);
  const narrowed = server.cli(['cluster', 'get', 'orders', '--project', 'named-things', '--output', 'json']);
  assert.equal(JSON.parse(narrowed.stdout).id, created.id);

  // A member who sees one project needs no --project.
  const member = (await server.api('POST', `/api/v1/projects/${project.id}/members`, { name: 'mo', role: 'project_member' })).json;
  const list = server.cli(['cluster', 'list', '--output', 'json'], { KEYWARD_TOKEN: member.token });
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout).map((c) => c.id), [created.id]);
  const audit = server.cli(['audit', 'list', '--output', 'json'], { KEYWARD_TOKEN: member.token });
  assert.equal(audit.code, 0, audit.stderr);
  // The owner sees several: the CLI says which, instead of guessing.
  const keys = server.cli(['key', 'list']);
  assert.equal(keys.code, 2);
  assert.match(keys.stderr, /--project is required: you can see \d+ projects: .*named-things \(p-[0-9a-f]{16}\)/);
});

test('cluster delete asks first: without a terminal it needs --yes; deleted clusters leave the list', () => {
  const c = server.createCluster('to-delete');
  const refused = server.cli(['cluster', 'delete', 'to-delete']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /refusing without confirmation.*add --yes/);
  assert.equal(JSON.parse(server.cli(['cluster', 'get', c.id, '--output', 'json']).stdout).state, 'available');

  const deleted = server.cli(['cluster', 'delete', 'to-delete', '--yes', '--output', 'json']);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.equal(JSON.parse(deleted.stdout).state, 'deleted');
  const listed = JSON.parse(server.cli(['cluster', 'list', '--output', 'json']).stdout);
  assert.ok(!listed.some((x) => x.id === c.id), 'a deleted cluster is still listed without --all');
  const all = JSON.parse(server.cli(['cluster', 'list', '--all', '--output', 'json']).stdout);
  assert.ok(all.some((x) => x.id === c.id && x.state === 'deleted'));
});

test('errors speak in flags, not in API field names', async () => {
  const cmek = (await server.api('POST', '/api/v1/projects', { name: 'cmek-words', cmek_enabled: true })).json;
  assert.ok(cmek.id, JSON.stringify(cmek));
  const r = server.cli(['cluster', 'backup-policy', server.createCluster('words').id, '--schedule', 'daily',
    '--retention-days', '0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--retention-days must be between 1 and 3650/);
  assert.doesNotMatch(r.stderr, /retention_days/);
  const again = server.cli(['project', 'update', 'cmek-words', '--cmek', 'false']);
  assert.equal(again.code, 1);
  assert.doesNotMatch(again.stderr, /cmek_enabled/);
});

test('the start-up hint names the real address and data dir, and works as printed', () => {
  const hint = server.output.match(/keyward: try: (.*)\n/);
  assert.ok(hint, server.output);
  assert.match(hint[1], new RegExp(`--server ${server.url.replace(/[.]/g, '\\.')} `));
  assert.match(hint[1], new RegExp(`--data-dir ${server.dataDir}`));
  const args = hint[1].split(' ').slice(1).map((a) => (a === 'demo' ? 'hint-demo' : a));
  const r = bare(args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /cluster c-[0-9a-f]{16} \(hint-demo\)/);
});

test('without an Azure identity, key create works but says the application shown is a placeholder', async () => {
  const cmek = (await server.api('POST', '/api/v1/projects', { name: 'no-identity', cmek_enabled: true })).json;
  const r = server.cli(['key', 'create', '--project', 'no-identity', '--provider', 'azure-key-vault', '--region', 'eastus',
    '--key-vault-name', 'kv-none', '--key-name-prefix', 'cmek']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /WARNING: this keyward server has no Microsoft Entra identity configured: the application name and id shown are placeholders/);
  const key = JSON.parse(server.cli(['key', 'list', '--project', cmek.id, '--output', 'json']).stdout)[0];
  const got = JSON.parse(server.cli(['key', 'get', '--project', cmek.id, 'eastus', '--output', 'json']).stdout);
  assert.equal(got.id, key.id, 'a key answers to its region');
  assert.equal(got.setup.service_identity.placeholder, true);
  assert.match(server.output, /no Azure identity configured/);
});

test('key providers lists the registry\'s providers; a provider\'s settings are its flags, errors name them', async () => {
  const list = server.cli(['key', 'providers']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /azure-key-vault\s+Azure Key Vault\s+azure\s+(yes|no)\s+--key-vault-name\? --managed-hsm-name\? --key-name-prefix/);
  assert.match(list.stdout, /aws-kms\s+AWS KMS\s+aws\s+(yes|no)\s+--key-arn/);
  const help = server.cli(['key', '--help']);
  assert.match(help.stdout, /--provider aws-kms --region R\n\s+--key-arn KEY_ARN/);
  await server.api('POST', '/api/v1/projects', { name: 'flags', cmek_enabled: true });
  const wrong = server.cli(['key', 'create', '--project', 'flags', '--provider', 'azure-key-vault', '--region', 'eastus', '--key-arn', 'x']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /unknown field '--key-arn'/);
  const missing = server.cli(['key', 'create', '--project', 'flags', '--provider', 'aws-kms', '--region', 'us-east-1']);
  assert.match(missing.stderr, /field '--key-arn' is required/);
  const arn = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  const created = server.cli(['key', 'create', '--project', 'flags', '--provider', 'aws-kms', '--region', 'us-east-1',
    '--provider-config', JSON.stringify({ key_arn: arn }), '--output', 'json']);
  assert.equal(created.code, 0, created.stderr);
  assert.equal(JSON.parse(created.stdout).key_name, arn);
});

test('serve --help lists each KMS provider\'s flags under its name; an unknown provider flag is refused by name', async () => {
  const help = bare(['serve', '--help']);
  assert.equal(help.code, 0, help.stderr);
  const providers = (await server.api('GET', '/api/v1/kms-providers')).json.items;
  const sections = {};
  for (const p of providers.filter((x) => x.customer_managed)) {
    const start = help.stdout.indexOf(`\n${p.display_name} (${p.name})`);
    assert.ok(start >= 0, `no section for ${p.name} in serve --help:\n${help.stdout}`);
    const end = help.stdout.indexOf('\n\n', start + 1);
    sections[p.name] = help.stdout.slice(start, end < 0 ? undefined : end);
  }
  for (const flag of ['--azure-tenant-id T', '--azure-client-id C', '--azure-app-id ID', '--azure-managed-identity', '--azure-ca-file F']) {
    assert.match(sections['azure-key-vault'], new RegExp(`\n  ${flag} `), flag);
  }
  for (const flag of ['--aws-endpoint-url U', '--aws-use-fips-endpoint', '--aws-ca-file F', '--aws-principal-arn ARN']) {
    assert.match(sections['aws-kms'], new RegExp(`\n  ${flag} `), flag);
  }
  assert.doesNotMatch(sections['aws-kms'], /--azure-/);
  const typo = bare(['serve', '--data-dir', tempDir(), '--aws-endpoint-urll', 'https://kms.example']);
  assert.equal(typo.code, 2);
  assert.equal(typo.stderr, 'keyward serve: unknown flag --aws-endpoint-urll; see --help\n');
});

test('an AWS key test on a server without AWS credentials leaves the key pending and says what the server lacks', async () => {
  await server.api('POST', '/api/v1/projects', { name: 'no-aws', cmek_enabled: true });
  const arn = 'arn:aws:kms:us-east-1:111122223333:key/0000abcd-12ab-34cd-56ef-1234567890ab';
  const created = server.cli(['key', 'create', '--project', 'no-aws', '--provider', 'aws-kms', '--region', 'us-east-1',
    '--key-arn', arn, '--output', 'json']);
  assert.equal(created.code, 0, created.stderr);
  const key = JSON.parse(created.stdout);
  const tested = server.cli(['key', 'test', '--project', 'no-aws', key.id]);
  assert.equal(tested.code, 1, tested.stdout + tested.stderr);
  assert.match(tested.stdout, new RegExp(`encryption key ${key.id} is pending`));
  assert.match(tested.stdout, /FAIL {2}describe: this keyward server has no AWS credentials: set AWS_ACCESS_KEY_ID/);
  assert.doesNotMatch(tested.stdout, /\bfailed\b/);
  const list = server.cli(['key', 'list', '--project', 'no-aws']);
  assert.match(list.stdout, new RegExp(`${key.id}\\s+aws-kms\\s+us-east-1\\s+pending\\s`));
  const got = JSON.parse(server.cli(['key', 'get', '--project', 'no-aws', key.id, '--output', 'json']).stdout);
  assert.equal(got.state, 'pending');
  assert.match(got.status_message, /this keyward server's own configuration, not the key's, so the key stays pending/);
  const audit = JSON.parse(server.cli(['audit', 'list', '--project', 'no-aws', '--output', 'json']).stdout);
  const attempt = audit.find((e) => e.action === 'encryption_key.test' && e.target === key.id);
  assert.ok(attempt, JSON.stringify(audit));
  assert.equal(attempt.result, 'failure');
});
