// Shared helpers for the integration tests: start a real `keyward serve` on a free loopback
// port, talk to it through the CLI, the REST API and Redis clients, and stop it afterwards.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const keywardBin = process.env.KEYWARD_BIN || path.join(repoRoot, 'build', 'keyward');
// Test-only build with the fake KMS behind the KMS seam (tests/support/fake_kms.h).
export const fakeKmsBin = process.env.KEYWARD_FAKE_KMS_BIN || path.join(repoRoot, 'build', 'tests', 'keyward-fake-kms');

export function tempDir(prefix = 'kw-it-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A sanitizer build reports a race, a memory error or undefined behaviour on stderr; with
// halt_on_error the server exits, but a report near shutdown would otherwise go unnoticed.
const SANITIZER_REPORT = /WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error: /;
export function assertNoSanitizerReport(output, what) {
  const m = SANITIZER_REPORT.exec(output);
  if (m) throw new Error(`${what} printed a sanitizer report:\n${output.slice(Math.max(0, m.index - 200), m.index + 4000)}`);
}

export class Server {
  constructor(dataDir, extraArgs = [], { bin = keywardBin, env = {}, caFile = null } = {}) {
    this.dataDir = dataDir;
    // An HTTPS API: the CA its certificate chains to (--tls-self-signed: DATA/tls/ca.pem).
    this.tls = extraArgs.includes('--tls-self-signed') || extraArgs.includes('--tls-cert');
    this.caFile = caFile || (this.tls ? path.join(dataDir, 'tls', 'ca.pem') : null);
    this.extraArgs = extraArgs;
    this.bin = bin;
    this.env = env;
    this.proc = null;
    this.output = '';
  }

  // The free port is picked before the server binds it, so another process can take it in
  // between (seen with parallel suites): a start refused for that reason is retried on another.
  async start() {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startOnce();
      } catch (e) {
        if (attempt >= 3 || !/cannot listen on .*\(in use\?\)/.test(String(e.message))) throw e;
      }
    }
  }

  async startOnce() {
    this.port = await freePort();
    this.url = `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
    this.output = '';
    this.stderr = '';
    this.proc = spawn(this.bin, ['serve', '--data-dir', this.dataDir, '--listen',
      `127.0.0.1:${this.port}`, ...this.extraArgs], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.env } });
    this.proc.stdout.on('data', (d) => { this.output += d; });
    this.proc.stderr.on('data', (d) => { this.output += d; this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    // Start-up opens every cluster (a KMS round trip and RocksDB recovery each): generous on slow machines.
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`keyward serve exited early:\n${this.output}`);
      try {
        const r = this.tls ? await httpsGet(`${this.url}/healthz`, fs.readFileSync(this.caFile))
          : await fetch(`${this.url}/healthz`);
        if (r.status === 200) {
          this.token = fs.readFileSync(path.join(this.dataDir, 'owner.token'), 'utf8').trim();
          return this;
        }
      } catch { /* not up yet */ }
      await sleep(50);
    }
    throw new Error(`keyward serve did not become healthy:\n${this.output}`);
  }

  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill(signal);
    const result = await this.exited;
    this.proc = null;
    assertNoSanitizerReport(this.output, 'keyward serve');
    return result;
  }

  cli(args, extraEnv = {}) {
    const r = spawnSync(this.bin, args, {
      env: { ...process.env, KEYWARD_SERVER: this.url, KEYWARD_TOKEN: this.token,
        ...(this.caFile ? { KEYWARD_CACERT: this.caFile } : {}), ...extraEnv },
      encoding: 'utf8',
      timeout: 60000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  createCluster(name) {
    const r = this.cli(['cluster', 'create', '--name', name, '--output', 'json']);
    if (r.code !== 0) throw new Error(`cluster create failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  async api(method, urlPath, body, token = this.token, extraHeaders = {}) {
    const headers = { 'Content-Type': 'application/json', ...extraHeaders };
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)) };
    let r;
    try {
      r = await fetch(`${this.url}${urlPath}`, init);
    } catch (e) {
      // A kept-alive connection the server closed as idle (15 s) just as this request went out:
      // the server never read it (it only closes idle connections), so sending it again on a
      // fresh connection is safe. Anything else is the test's failure.
      if (e?.cause?.code !== 'UND_ERR_SOCKET' || !/other side closed/.test(e.cause.message)) throw e;
      r = await fetch(`${this.url}${urlPath}`, init);
    }
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, json, text };
  }
}

// GET over HTTPS trusting `ca` (PEM) only: { status, text }.
export function httpsGet(url, ca, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  });
}

export function splitEndpoint(endpoint) {
  const i = endpoint.lastIndexOf(':');
  return { host: endpoint.slice(0, i), port: Number(endpoint.slice(i + 1)) };
}

// Every regular file below `dir`, recursively.
export function allFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...allFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

// Canaries are "KWCANARY" + 32 random hex characters. Every byte of every file below `dir` is
// searched for the marker and for each canary in one linear pass per file.
export function makeCanary() {
  return 'KWCANARY' + [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, '0')).join('');
}

export function canaryHits(dir, canaries) {
  const wanted = new Set(canaries);
  let markers = 0;
  let exact = 0;
  const found = [];
  for (const f of allFiles(dir)) {
    const text = fs.readFileSync(f).toString('latin1');
    for (const m of text.matchAll(/KWCANARY([0-9a-f]{32})?/g)) {
      markers++;
      if (m[0].length > 8 && wanted.has(m[0])) exact++;
      if (found.length < 5) found.push(`${m[0]} in ${f}`);
    }
  }
  return { markers, exact, found };
}

export function haveCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export { sleep };

// Plays the customer's part in their own KMS for the fake-KMS build: the state file that
// tests/support/fake_kms.cc re-reads on every call.
export class FakeKms {
  constructor(dir) {
    this.path = path.join(dir, 'fake-kms.json');
    this.state = { keys: {}, unreachable: false };
    this.save();
  }
  save() { fs.writeFileSync(this.path, JSON.stringify(this.state)); }
  createKey(name, { region = 'eastus', purgeProtection = true, granted = false, enabled = true } = {}) {
    this.state.keys[name] = { region, purge_protection: purgeProtection, granted, enabled, version: 'v1',
      secret: crypto.randomBytes(32).toString('hex') };
    this.save();
  }
  update(name, fields) { Object.assign(this.state.keys[name], fields); this.save(); }
  setUnreachable(v) { this.state.unreachable = v; this.save(); }
  get env() { return { KEYWARD_FAKE_KMS_STATE: this.path }; }
}

export function fakeServer(dir, fake, extraArgs = []) {
  return new Server(dir, extraArgs, { bin: fakeKmsBin, env: fake.env });
}
