// Encrypted backups to Azure Blob Storage (issue 9), against azurite — the real local Blob server
// from npm — over HTTPS with a CA made here: backup → restore through keyward with every key and
// value compared, no plaintext in any blob, tampering through the Blob API refused with no
// cluster made, and a wrong account key refused naming the account and never a secret.
// Dual-region copies can go to a second container (--backup-secondary-azure-*): copied blob for
// blob, restored from with --from-copy, refused when tampered with, deleted with the backup.
// BACKUP_KEYS (default 2000) keys, values 10 B–64 KiB. Skipped LOUDLY without azurite/openssl.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { test } from 'node:test';
import { cliJson, compareAll, connect, makeValues, writeAll } from './backup_data.mjs';
import { Server, allFiles, canaryHits, freePort, haveCommand, sleep, tempDir } from './harness.mjs';

const KEYS = Number(process.env.BACKUP_KEYS || 2000);
const ACCOUNT = 'devstoreaccount1';
// azurite's published development key (not a secret).
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const CONTAINER = 'kw-backups';
const azuriteBin = path.resolve('node_modules/.bin/azurite-blob');

// A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl CLI.
function makeCerts(dir) {
  const run = (args) => {
    const r = spawnSync('openssl', args, { cwd: dir });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=keyward test CA',
    '-days', '1', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem',
    '-days', '1', '-extfile', 'ext.cnf']);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

// A minimal Blob client with its own Shared Key signing (a second implementation of the rules
// keyward's C++ follows), for looking at and tampering with what keyward wrote.
class Blob {
  constructor(port, ca, container = CONTAINER) {
    this.port = port;
    this.ca = fs.readFileSync(ca);
    this.container = container;
  }
  request(method, name, query = {}, body = Buffer.alloc(0)) {
    const pathPart = `/${ACCOUNT}/${this.container}${name ? '/' + name.split('/').map(encodeURIComponent).join('/') : ''}`;
    const qs = new URLSearchParams(query).toString();
    const headers = { 'x-ms-date': new Date().toUTCString(), 'x-ms-version': '2021-12-02' };
    if (method === 'PUT') {
      headers['x-ms-blob-type'] = 'BlockBlob';
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = String(body.length);
    }
    const xms = Object.keys(headers).filter((h) => h.startsWith('x-ms-')).sort().map((h) => `${h}:${headers[h]}\n`).join('');
    const canonQuery = Object.keys(query).sort().map((k) => `\n${k}:${query[k]}`).join('');
    const len = body.length ? String(body.length) : '';
    const toSign = `${method}\n\n\n${len}\n\n${headers['content-type'] || ''}\n\n\n\n\n\n\n${xms}/${ACCOUNT}${pathPart}${canonQuery}`;
    const sig = crypto.createHmac('sha256', Buffer.from(DEV_KEY, 'base64')).update(toSign, 'utf8').digest('base64');
    headers.authorization = `SharedKey ${ACCOUNT}:${sig}`;
    return new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: this.port, method, path: pathPart + (qs ? '?' + qs : ''), headers, ca: this.ca }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }
  async list(prefix = '') {
    const names = [];
    let marker = '';
    for (;;) {
      const q = { restype: 'container', comp: 'list', prefix };
      if (marker) q.marker = marker;
      const r = await this.request('GET', '', q);
      assert.equal(r.status, 200, r.body.toString());
      const xml = r.body.toString();
      for (const m of xml.matchAll(/<Name>([^<]*)<\/Name>/g)) names.push(m[1]);
      marker = (/<NextMarker>([^<]*)<\/NextMarker>/.exec(xml) || [])[1] || '';
      if (!marker) return names.sort();
    }
  }
  async get(name) {
    const r = await this.request('GET', name);
    assert.equal(r.status, 200, `GET ${name}: ${r.status}`);
    return r.body;
  }
  async put(name, data) {
    const r = await this.request('PUT', name, {}, data);
    assert.equal(r.status, 201, `PUT ${name}: ${r.status} ${r.body}`);
  }
  async del(name) {
    const r = await this.request('DELETE', name);
    assert.ok(r.status === 202 || r.status === 404, `DELETE ${name}: ${r.status}`);
  }
}

async function startAzurite(dir) {
  if (!fs.existsSync(azuriteBin) || !haveCommand('openssl')) return null;
  const certs = makeCerts(dir);
  const location = path.join(dir, 'azurite');
  fs.mkdirSync(location);
  const port = await freePort();
  const proc = spawn(process.execPath, [fs.realpathSync(azuriteBin), '--blobHost', '127.0.0.1', '--blobPort', String(port),
    '--location', location, '--silent', '--disableTelemetry', '--skipApiVersionCheck', '--cert', certs.cert, '--key', certs.key],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const blob = new Blob(port, certs.ca);
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && proc.exitCode === null) {
    try {
      const r = await blob.request('GET', '', { restype: 'container' });
      if (r.status === 404 || r.status === 200) {
        return { proc, port, blob, ca: certs.ca, location, endpoint: `https://127.0.0.1:${port}/${ACCOUNT}`, stop: () => proc.kill('SIGTERM') };
      }
    } catch { /* not listening yet */ }
    await sleep(200);
  }
  proc.kill('SIGKILL');
  console.log(`azurite did not start:\n${output}`);
  return null;
}

function assertRefused(server, backupId, name, pattern) {
  const r = server.cli(['backup', 'restore', backupId, '--name', name]);
  assert.equal(r.code, 1, `restore of a tampered backup succeeded: ${r.stdout}`);
  assert.match(r.stderr, /no cluster was created/);
  assert.match(r.stderr, pattern);
  const clusters = cliJson(server, ['cluster', 'list']).json;
  assert.ok(!clusters.some((c) => c.name === name), `refused restore left cluster ${name}`);
  return r.stderr;
}

test(`backup → restore to Azure Blob Storage (azurite): ${KEYS} keys compared, no plaintext in any blob, tampering and a wrong key refused`, async (t) => {
  const dir = tempDir('kw-azblob-');
  const azurite = await startAzurite(dir);
  if (!azurite) {
    t.skip('SKIPPED LOUDLY: azurite (tests/node_modules/.bin/azurite-blob) or openssl is unavailable, so backups to Azure Blob Storage were NOT tested');
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const dataDir = path.join(dir, 'data');
  // Blocks of 256 KiB: every 1 MiB chunk goes up as Put Block × 5 + Put Block List.
  const args = ['--backup-azure-account', ACCOUNT, '--backup-azure-container', CONTAINER,
    '--backup-azure-endpoint', azurite.endpoint, '--backup-azure-ca-file', azurite.ca, '--backup-azure-block-size', '262144'];
  const server = new Server(dataDir, args, { env: { AZURE_STORAGE_KEY: DEV_KEY } });
  // azurite is stopped whatever happens, a server that did not start included: a child left
  // running keeps the test process alive until ctest's timeout.
  try {
    await server.start();
  } catch (e) {
    azurite.stop();
    throw e;
  }
  try {
    const source = server.createCluster('source');
    const { values, canaries } = makeValues(KEYS);
    const redis = await connect(source);
    await writeAll(redis, values);
    await redis.quit();

    // Through the API, polled: a BACKUP_KEYS=100000 backup can outlast the harness's 60 s CLI limit.
    const t0 = Date.now();
    const started = await server.api('POST', `/api/v1/clusters/${source.id}/backups`);
    assert.equal(started.status, 202, started.text);
    let backup = started.json;
    while (backup.state === 'running') {
      await sleep(100);
      backup = (await server.api('GET', `/api/v1/backups/${backup.id}`)).json;
    }
    assert.equal(backup.state, 'completed', JSON.stringify(backup));
    assert.equal(backup.destination, `azure:${azurite.endpoint}/${CONTAINER}`);
    console.log(`backup of ${KEYS} keys to azurite: ${(backup.bytes / 1048576).toFixed(1)} MiB in ${backup.files} files, ${Date.now() - t0} ms`);

    // The objects are blobs in the container, none in the local directory.
    // A backup's own chunks are under its id; SST files are shared objects of the cluster
    // (incremental backups reuse them), under shared/<cluster id>/.
    const own = await azurite.blob.list(`${backup.id}/`);
    assert.ok(own.includes(`${backup.id}/manifest`), own.join(','));
    const shared = await azurite.blob.list(`shared/${source.id}/`);
    const names = [...own, ...shared];
    const chunks = names.filter((n) => n.includes('/data/') || n.startsWith('shared/'));
    assert.ok(chunks.length >= backup.files, `${chunks.length} chunks for ${backup.files} files`);
    const localDir = path.join(dataDir, 'backups');
    assert.ok(!fs.existsSync(path.join(localDir, backup.id)), 'the backup went to the local directory too');

    // No canary, not even the marker, in any blob (read back through the Blob API) nor in
    // azurite's own files.
    let hits = 0;
    for (const n of names) {
      const data = (await azurite.blob.get(n)).toString('latin1');
      hits += (data.match(/KWCANARY/g) || []).length;
    }
    assert.equal(hits, 0, 'plaintext canary markers in the backup blobs');
    const onDisk = canaryHits(azurite.location, canaries);
    assert.equal(onDisk.markers, 0, `canaries in azurite's files: ${onDisk.found.join(', ')}`);

    // Tampering through the Blob API, each refused with no cluster created, then undone.
    const first = chunks[0];
    const original = await azurite.blob.get(first);
    const flipped = Buffer.from(original);
    flipped[Math.floor(flipped.length / 2)] ^= 0x01;
    await azurite.blob.put(first, flipped);
    assertRefused(server, backup.id, 'flipped', /failed authentication: chunk 0 of file/);
    await azurite.blob.put(first, original);

    // The last chunk of the file with the most chunks dropped.
    const byFile = new Map();
    for (const n of chunks) {
      const file = n.startsWith('shared/') ? n.split('/').slice(0, -1).join('/') : n.split('/').pop().split('-')[0];
      byFile.set(file, [...(byFile.get(file) || []), n]);
    }
    const longest = [...byFile.values()].sort((a, b) => b.length - a.length)[0];
    const lastName = longest[longest.length - 1];
    const lastData = await azurite.blob.get(lastName);
    await azurite.blob.del(lastName);
    console.log(assertRefused(server, backup.id, 'truncated', new RegExp(`${lastName.split('/').pop()}|missing`)).trim());
    await azurite.blob.put(lastName, lastData);

    // Two chunks swapped (within one file when one has two, else across files).
    const [a, b] = longest.length >= 2 ? [longest[0], longest[1]] : [chunks[0], chunks[1]];
    const [da, db] = [await azurite.blob.get(a), await azurite.blob.get(b)];
    await azurite.blob.put(a, db);
    await azurite.blob.put(b, da);
    assertRefused(server, backup.id, 'swapped', /failed authentication/);
    await azurite.blob.put(a, da);
    await azurite.blob.put(b, db);
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'clusters')).sort(), [source.id], 'refused restores left files');

    const t1 = Date.now();
    const restored = cliJson(server, ['backup', 'restore', backup.id, '--name', 'restored']);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(restored.json.state, 'available');
    console.log(`restore from azurite: ${Date.now() - t1} ms`);
    const r2 = await connect(restored.json);
    await compareAll(r2, values);  // every key and value, nothing more (counted by SCAN)
    await r2.quit();

    // A wrong account key: a new backup fails and a restore is refused, each naming the
    // account and the fix, with neither key in any message.
    const wrongKey = crypto.randomBytes(64).toString('base64');
    await server.stop();
    server.env = { AZURE_STORAGE_KEY: wrongKey };
    await server.start();
    const failed = server.cli(['backup', 'create', source.id, '--wait']);
    assert.equal(failed.code, 1, failed.stdout);
    assert.match(failed.stderr, new RegExp(`account ${ACCOUNT}`));
    assert.match(failed.stderr, /AZURE_STORAGE_KEY/);
    const refused = assertRefused(server, backup.id, 'wrong-key', new RegExp(`account ${ACCOUNT}.*AZURE_STORAGE_KEY`));
    console.log(`wrong key: ${failed.stderr.trim()}\nwrong key, restore: ${refused.trim()}`);
    for (const text of [failed.stderr, refused, server.output]) {
      assert.ok(!text.includes(wrongKey) && !text.includes(DEV_KEY), 'a key reached a message');
      assert.ok(!/SharedKey|signature/i.test(text), `a signature reached a message: ${text}`);
    }

    // Delete with the right key again: every blob of the backup goes.
    await server.stop();
    server.env = { AZURE_STORAGE_KEY: DEV_KEY };
    await server.start();
    const deleted = server.cli(['backup', 'delete', backup.id]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(await azurite.blob.list(`${backup.id}/`), []);
  } finally {
    if (server.proc) await server.stop('SIGKILL');
    azurite.stop();
    await sleep(200);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('dual-region copies to a second Blob container (azurite): same blobs as the primary, no plaintext, restored from with --from-copy, tampering refused, deleted with the backup', async (t) => {
  const dir = tempDir('kw-azsec-');
  const azurite = await startAzurite(dir);
  if (!azurite) {
    t.skip('SKIPPED LOUDLY: azurite (tests/node_modules/.bin/azurite-blob) or openssl is unavailable, so dual-region copies to Azure Blob Storage were NOT tested');
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const SECONDARY = 'kw-secondary';
  const copies = new Blob(azurite.port, azurite.ca, SECONDARY);
  const dataDir = path.join(dir, 'data');
  const secondaryArgs = ['--backup-secondary-azure-account', ACCOUNT, '--backup-secondary-azure-container', SECONDARY,
    '--backup-secondary-azure-endpoint', azurite.endpoint, '--backup-secondary-azure-ca-file', azurite.ca];
  const server = new Server(dataDir, secondaryArgs, { env: { AZURE_SECONDARY_STORAGE_KEY: DEV_KEY } });
  try {
    // One secondary at a time, and never the primary's own container: refused at start-up.
    const both = new Server(path.join(dir, 'both'), [...secondaryArgs, '--backup-secondary-dir', path.join(dir, 'sec')],
      { env: { AZURE_SECONDARY_STORAGE_KEY: DEV_KEY } });
    await assert.rejects(both.start(), /--backup-secondary-dir and --backup-secondary-azure-account both name/);
    const same = new Server(path.join(dir, 'same'), [...secondaryArgs, '--backup-azure-account', ACCOUNT,
      '--backup-azure-container', SECONDARY, '--backup-azure-endpoint', azurite.endpoint, '--backup-azure-ca-file', azurite.ca],
    { env: { AZURE_STORAGE_KEY: DEV_KEY } });
    await assert.rejects(same.start(), /the dual-region copies' destination azure:.* is where backups already go/);

    await server.start();
    const source = server.createCluster('dual-az');
    const { values, canaries } = makeValues(Math.min(KEYS, 600));
    const redis = await connect(source);
    await writeAll(redis, values);
    await redis.quit();
    const policy = { schedule: 'daily', retention_days: 7, dual_region: { enabled: true, secondary_region: 'westus' } };
    const set = await server.api('PUT', `/api/v1/clusters/${source.id}/backup-policy`, policy);
    assert.equal(set.status, 200, set.text);
    const started = await server.api('POST', `/api/v1/clusters/${source.id}/backups`);
    assert.equal(started.status, 202, started.text);
    let b = started.json;
    for (let i = 0; i < 1500 && (b.state === 'running' || b.copy?.state === 'copying'); i++) {
      await sleep(20);
      b = (await server.api('GET', `/api/v1/backups/${b.id}`)).json;
    }
    assert.equal(b.state, 'completed', JSON.stringify(b));
    const copyDest = `azure:${azurite.endpoint}/${SECONDARY}`;
    assert.deepEqual(b.copy, { state: 'completed', destination: copyDest, error: '' });

    // The copy holds exactly the primary's objects (its own and the shared SSTs), byte for byte.
    const primaryDir = path.join(dataDir, 'backups');
    const primary = allFiles(primaryDir).map((f) => path.relative(primaryDir, f)).sort();
    const copied = [...await copies.list(`${b.id}/`), ...await copies.list(`shared/${source.id}/`)].sort();
    assert.deepEqual(copied, primary);
    let hits = 0;
    for (const n of copied) {
      const data = await copies.get(n);
      assert.ok(data.equals(fs.readFileSync(path.join(primaryDir, n))), `${n} differs from the primary`);
      hits += (data.toString('latin1').match(/KWCANARY/g) || []).length;
    }
    assert.equal(hits, 0, 'plaintext canary markers in the copy');
    assert.equal(canaryHits(azurite.location, canaries).markers, 0, "canaries in azurite's files");

    // Restored from the copy, every key and value compared.
    const fromCopy = cliJson(server, ['backup', 'restore', b.id, '--name', 'from-copy', '--from-copy']);
    assert.equal(fromCopy.code, 0, fromCopy.stderr);
    assert.deepEqual(fromCopy.json.restored_from, { destination: copyDest, copy: true, primary_error: '' });
    const r2 = await connect(fromCopy.json);
    await compareAll(r2, values);
    await r2.quit();

    // A flipped byte in the copy's largest blob: refused naming the backup, nothing created.
    const sizes = await Promise.all(copied.map(async (n) => [n, (await copies.get(n)).length]));
    const largest = sizes.sort((x, y) => y[1] - x[1])[0][0];
    const original = await copies.get(largest);
    const flipped = Buffer.from(original);
    flipped[Math.floor(flipped.length / 2)] ^= 0x01;
    await copies.put(largest, flipped);
    const refused = server.cli(['backup', 'restore', b.id, '--name', 'tampered', '--from-copy']);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /no cluster was created/);
    assert.match(refused.stderr, /failed authentication/);
    assert.equal(server.cli(['cluster', 'get', 'tampered']).code, 1, 'a refused restore made a cluster');
    await copies.put(largest, original);

    // Deleting the backup deletes its copy: no blob of it is left in the secondary container.
    const deleted = server.cli(['backup', 'delete', b.id]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(await copies.list(`${b.id}/`), []);
    assert.deepEqual(await copies.list(`shared/${source.id}/`), []);
  } finally {
    if (server.proc) await server.stop('SIGKILL');
    azurite.stop();
    await sleep(200);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
