// Who may do what, end to end: a viewer cannot create a project (403, audited), a revoked token
// is refused on its next use, and a rotated owner token replaces the old one and its file.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Redis from 'ioredis';
import { Server, splitEndpoint, tempDir } from './harness.mjs';

let server;
let dir;
before(async () => { dir = tempDir(); server = await new Server(dir).start(); });
after(async () => { await server.stop(); });

test('a project viewer cannot create a project: 403, audited for the organization', async () => {
  const plain = (await server.api('POST', '/api/v1/projects', { name: 'acc-plain' })).json;
  const viewer = (await server.api('POST', `/api/v1/projects/${plain.id}/members`, { name: 'alice', role: 'project_viewer' })).json;
  const r = await server.api('POST', '/api/v1/projects', { name: 'alices-own' }, viewer.token);
  assert.equal(r.status, 403, r.text);
  assert.match(r.json.error.message, /project_creator/);
  const names = (await server.api('GET', '/api/v1/projects?page_size=500')).json.items.map((p) => p.name);
  assert.ok(!names.includes('alices-own'));
  // Denials are filed under the organization id, readable by organization owners.
  const org = plain.org_id;
  assert.match(org, /^org-/);
  const events = (await server.api('GET', `/api/v1/projects/${org}/audit-events?page_size=500`)).json.items;
  const denied = events.find((e) => e.action === 'project.create' && e.result === 'failure' && e.actor.includes(viewer.user_id));
  assert.ok(denied, JSON.stringify(events));
  assert.match(denied.time, /Z$/);
  // Members are listed; the viewer's role can be changed by the owner, not by herself.
  const members = (await server.api('GET', `/api/v1/projects/${plain.id}/members`, undefined, viewer.token)).json.items;
  assert.ok(members.some((m) => m.user_id === viewer.user_id && m.role === 'project_viewer'));
  assert.equal((await server.api('PATCH', `/api/v1/projects/${plain.id}/members/${viewer.user_id}`, { role: 'project_owner' }, viewer.token)).status, 403);
  assert.equal((await server.api('PATCH', `/api/v1/projects/${plain.id}/members/${viewer.user_id}`, { role: 'project_member' })).json.role, 'project_member');
});

test('a revoked token is refused on its next use', async () => {
  const created = await server.api('POST', '/api/v1/tokens', { ttl_seconds: 3600 });
  assert.equal(created.status, 201, created.text);
  assert.match(created.json.expires_at, /Z$/);
  const t = created.json.token;
  assert.equal((await server.api('GET', '/api/v1/projects', undefined, t)).status, 200);
  const listed = (await server.api('GET', '/api/v1/tokens')).json.items;
  assert.ok(listed.some((x) => x.id === created.json.id && x.kind === 'personal' && !('token' in x)));
  assert.equal((await server.api('DELETE', `/api/v1/tokens/${created.json.id}`)).status, 200);
  const after = await server.api('GET', '/api/v1/projects', undefined, t);
  assert.equal(after.status, 401);
  assert.equal((await server.api('POST', '/api/v1/tokens', { ttl_seconds: 0 })).status, 400);
});

test('the rotated owner token works, the old one is refused at once, its file is 0600', async () => {
  const file = path.join(dir, 'owner.token');
  const old = server.token;
  assert.equal(fs.readFileSync(file, 'utf8').trim(), old);
  const r = await server.api('POST', '/api/v1/tokens/owner:rotate');
  assert.equal(r.status, 200, r.text);
  const fresh = r.json.token;
  assert.notEqual(fresh, old);
  assert.equal((await server.api('GET', '/api/v1/projects', undefined, old)).status, 401);
  assert.equal((await server.api('GET', '/api/v1/projects', undefined, fresh)).status, 200);
  assert.equal(fs.readFileSync(file, 'utf8').trim(), fresh);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  server.token = fresh;
  // The CLI, which reads the token file by default, keeps working.
  const cli = server.cli(['project', 'list'], { KEYWARD_TOKEN: fresh });
  assert.equal(cli.code, 0, cli.stderr);
});

test('a cluster password reset refuses the old password at once and closes its connections', async () => {
  const c = await server.createCluster('pw-reset');
  const { host, port } = splitEndpoint(c.endpoint);
  const opts = { host, port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false };
  const old = new Redis({ ...opts, password: c.password });
  await old.connect();
  await old.set('k', 'v');
  const closed = new Promise((resolve) => old.once('end', resolve));
  const r = await server.api('POST', `/api/v1/clusters/${c.id}:reset-password`);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.password && r.json.password !== c.password);
  await closed;  // the server closed the connection that used the old password
  const again = new Redis({ ...opts, enableReadyCheck: false });
  await again.connect();
  await assert.rejects(again.auth(c.password), /WRONGPASS|invalid|password/i);
  again.disconnect();
  const fresh = new Redis({ ...opts, password: r.json.password });
  await fresh.connect();
  assert.equal(await fresh.get('k'), 'v');
  fresh.disconnect();
  const events = (await server.api('GET', `/api/v1/projects/${c.project_id}/audit-events?page_size=500`)).json.items;
  assert.ok(events.some((e) => e.action === 'cluster.reset_password' && e.result === 'success'));
  // Nothing of either password in the audit log.
  assert.ok(!JSON.stringify(events).includes(r.json.password) && !JSON.stringify(events).includes(c.password));
});

test('CLI: tokens, members, the project_creator grant and a password reset', async () => {
  const json = (r) => { assert.equal(r.code, 0, r.stderr); return JSON.parse(r.stdout); };
  const made = json(server.cli(['token', 'create', '--ttl', '600', '--output', 'json']));
  assert.ok(json(server.cli(['token', 'list', '--output', 'json'])).some((t) => t.id === made.id));
  json(server.cli(['token', 'revoke', made.id, '--output', 'json']));
  assert.equal((await server.api('GET', '/api/v1/projects', undefined, made.token)).status, 401);
  const p = (await server.api('POST', '/api/v1/projects', { name: 'cli-members' })).json;
  const bob = json(server.cli(['project', 'add-member', p.id, '--name', 'bob', '--role', 'project_viewer', '--output', 'json']));
  const denied = server.cli(['project', 'create', '--name', 'bobs'], { KEYWARD_TOKEN: bob.token });
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /project_creator.*\(HTTP 403\)/);
  json(server.cli(['user', 'allow-project-create', bob.user_id, '--output', 'json']));
  json(server.cli(['project', 'create', '--name', 'bobs', '--output', 'json'], { KEYWARD_TOKEN: bob.token }));
  assert.equal(json(server.cli(['member', 'set-role', bob.user_id, '--project', p.id, '--role', 'project_member', '--output', 'json'])).role, 'project_member');
  assert.ok(json(server.cli(['member', 'list', '--project', p.id, '--output', 'json'])).some((m) => m.user_id === bob.user_id));
  const c = await server.createCluster('cli-reset');
  const reset = server.cli(['cluster', 'reset-password', c.id]);
  assert.equal(reset.code, 0, reset.stderr);
  assert.match(reset.stdout, /new password: [0-9a-f]{32}/);
});
