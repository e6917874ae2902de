// Starts keyward-kms-emulator on a free loopback port and drives its admin and ARM APIs the way
// a customer's scripts drive Azure's (same REST paths; only the host:port differs).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import crypto from 'node:crypto';
import { assertNoSanitizerReport, repoRoot, tempDir } from '../integration/harness.mjs';

export const emulatorBin = process.env.KEYWARD_EMULATOR_BIN || path.join(repoRoot, 'build', 'keyward-kms-emulator');

export class Emulator {
  async start(stateDir = tempDir('kw-emu-')) {
    this.stateDir = stateDir;
    this.proc = spawn(emulatorBin, ['--listen', '127.0.0.1:0', '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((r) => this.proc.on('exit', r));
    this.stderr = '';
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    const line = await new Promise((resolve, reject) => {
      let buf = '';
      this.proc.stdout.on('data', (d) => { buf += d; if (buf.includes('\n')) resolve(buf.split('\n')[0]); });
      this.proc.on('exit', () => reject(new Error(`emulator exited: ${buf}`)));
    });
    this.info = JSON.parse(line);
    this.ca = fs.readFileSync(this.info.ca_file);
    return this;
  }
  async stop() {
    if (this.proc && this.proc.exitCode === null) { this.proc.kill('SIGTERM'); await this.exited; }
    if (this.proc) assertNoSanitizerReport(this.stderr, 'keyward-kms-emulator');
  }
  vaultUrl(name) { return this.info.vault_url_template.replace('{name}', name); }

  request(method, url, body, token) {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const type = typeof body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json';
      const servername = /^[0-9.]+$/.test(u.hostname) ? undefined : u.hostname;
      // agent: false: a fresh connection each time. Reusing a kept-alive one races the server's idle
      // close, and the request then dies with 'socket hang up' (seen on a loaded machine).
      const req = https.request({ agent: false, host: '127.0.0.1', servername, port: u.port, path: u.pathname + u.search, method, ca: this.ca,
        headers: { 'Content-Type': type, Host: u.host, ...(token ? { Authorization: `Bearer ${token}` } : {}) } }, (res) => {
        let data = '';
        res.on('data', (d) => { data += d; });
        res.on('end', () => { let json = null; try { json = JSON.parse(data); } catch {} resolve({ status: res.statusCode, json, headers: res.headers }); });
      });
      req.on('error', reject);
      if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
      req.end();
    });
  }
  async principal(displayName, extra = {}) {
    return (await this.request('POST', `${this.info.admin_url}/principals`, { display_name: displayName, ...extra })).json;
  }
  async token(p, scope) {
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: p.client_id, client_secret: p.client_secret, scope }).toString();
    const r = await this.request('POST', `${this.info.authority_host}/${p.tenant_id}/oauth2/v2.0/token`, form);
    return r.json.access_token;
  }
  // ARM: PUT a vault (the customer's `az keyvault create`).
  async createVault(admin, { subscription = 'sub-1', resourceGroup = 'rg-1', name, location = 'eastus', purgeProtection = true }) {
    const token = await this.token(admin, 'https://management.azure.com/.default');
    const scope = `/subscriptions/${subscription}/resourceGroups/${resourceGroup}/providers/Microsoft.KeyVault/vaults/${name}`;
    const r = await this.request('PUT', `${this.info.management_host}${scope}?api-version=2023-07-01`,
      { location, properties: { tenantId: admin.tenant_id, sku: { family: 'A', name: 'premium' }, enableSoftDelete: true, enablePurgeProtection: purgeProtection, enableRbacAuthorization: true } }, token);
    if (r.status !== 200) throw new Error(JSON.stringify(r.json));
    return scope;
  }
  // ARM: PUT a role assignment (the customer's `az role assignment create`).
  async assignRole(admin, scope, roleId, principalObjectId) {
    const token = await this.token(admin, 'https://management.azure.com/.default');
    const id = crypto.randomUUID();
    const r = await this.request('PUT', `${this.info.management_host}${scope}/providers/Microsoft.Authorization/roleAssignments/${id}?api-version=2022-04-01`,
      { properties: { roleDefinitionId: `/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/${roleId}`, principalId: principalObjectId } }, token);
    if (r.status !== 201) throw new Error(JSON.stringify(r.json));
    return id;
  }
  async removeRole(admin, scope, id) {
    const token = await this.token(admin, 'https://management.azure.com/.default');
    await this.request('DELETE', `${this.info.management_host}${scope}/providers/Microsoft.Authorization/roleAssignments/${id}?api-version=2022-04-01`, undefined, token);
  }
  // AWS: an IAM principal with an access key ({name, account_id, arn, access_key_id,
  // secret_access_key}); each gets its own account unless accountId is given.
  async awsPrincipal(name, accountId) {
    return (await this.request('POST', `${this.info.admin_url}/aws/principals`, { name, ...(accountId ? { account_id: accountId } : {}) })).json;
  }
  async fault(f) { return (await this.request('POST', `${this.info.admin_url}/faults`, f)).json; }
  async clearFaults() { return this.request('DELETE', `${this.info.admin_url}/faults`); }
  async counters() { return (await this.request('GET', `${this.info.admin_url}/counters`)).json; }
}

export const ROLE_CRYPTO_OFFICER = '14b46e9e-c2b7-41b4-b07b-48a6ebf60603';
export const ROLE_CRYPTO_SERVICE_ENCRYPTION_USER = 'e147488a-f6f5-4113-8e2d-b22465e65bf6';
