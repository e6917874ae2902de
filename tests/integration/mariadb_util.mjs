// What the mariadb_*.test.mjs suites share: the skip check, finding a cluster's mariadbd in
// /proc, waiting for a state, a CMEK project with an active key on the fake KMS, and mysql2
// connections. Keep it small: each suite's own checks stay in the suite.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { keywardBin, sleep, splitEndpoint } from './harness.mjs';

export const PLUGIN_DIR = path.dirname(keywardBin);
export const MARIADBD = '/usr/sbin/mariadbd';

// Why a mariadb suite cannot run here (print it as 'SKIPPED LOUDLY: …'), or null. `extra`:
// [path, what to install] pairs the suite needs besides mariadbd, the plugin and the client.
export function missingMariadb(extra = []) {
  if (!fs.existsSync(MARIADBD)) return `${MARIADBD} is not installed (apt-get install mariadb-server)`;
  if (!fs.existsSync(path.join(PLUGIN_DIR, 'keyward_key_management.so'))) {
    return `keyward_key_management.so is not built in ${PLUGIN_DIR} (needs libmariadbd-dev)`;
  }
  if (spawnSync('sh', ['-c', 'command -v mariadb']).status !== 0) return 'the mariadb client is not installed';
  for (const [p, what] of extra) if (!fs.existsSync(p)) return `${p} is missing (${what})`;
  return null;
}

// Processes whose command line names a file under `dir` (found the way an operator would, in
// /proc): { pid, argv }.
export function processesUnder(dir) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline;
    try { cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8'); } catch { continue; }
    const argv = cmdline.split('\0').filter((a) => a !== '');
    if (argv.some((a) => a.includes(dir + '/'))) out.push({ pid: Number(entry), argv });
  }
  return out;
}

// The mariadbd serving a cluster whose directory is `clusterDir` (optionally only the one whose
// option file is under `clusterDir/sub`).
export function mariadbdPids(clusterDir, sub = '') {
  const prefix = path.join(clusterDir, sub) + '/';
  return processesUnder(clusterDir).filter(({ argv }) => {
    if (path.basename(argv[0]) !== 'mariadbd') return false;
    const defaults = argv.find((a) => a.startsWith('--defaults-file='));
    return defaults && defaults.slice('--defaults-file='.length).startsWith(prefix);
  }).map(({ pid }) => pid);
}

export async function waitFor(what, ms, fn) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(200);
  }
}

export async function waitForState(server, id, want, ms) {
  let c;
  await waitFor(() => `cluster ${id} to be ${want} (is ${c?.state}: ${c?.state_message})`, ms, async () => {
    c = (await server.api('GET', `/api/v1/clusters/${id}`)).json;
    return c.state === want;
  });
  return c;
}

// A CMEK project with an active Azure key on the fake KMS.
export async function cmekSetup(server, fake, name) {
  const project = (await server.api('POST', '/api/v1/projects', { name, cmek_enabled: true })).json;
  const key = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys`,
    { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: `kv-${name}`, key_name_prefix: 'sql' } })).json;
  fake.createKey(key.key_name, { granted: true });
  const tested = (await server.api('POST', `/api/v1/projects/${project.id}/encryption-keys/${key.id}:test`)).json;
  assert.equal(tested.state, 'active', JSON.stringify(tested));
  return { project, key };
}

// mysql2 as the cluster's admin; `ca`: TLS, the server checked against that CA.
export function connectSql(endpoint, password, { ca = null, timeout = 5000 } = {}) {
  const { host, port } = splitEndpoint(endpoint);
  return mysql.createConnection({ host, port, user: 'admin', password, connectTimeout: timeout,
    ...(ca ? { ssl: { ca } } : {}) });
}
