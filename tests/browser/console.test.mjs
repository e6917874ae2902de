// The web console in a real browser (Debian's Chromium via playwright-core) against a real
// `keyward serve` (the fake-KMS build, so the test plays the customer's KMS): sign-in and
// sign-out, Projects (Create New Project with and without CMEK), Clusters (the key matched, the
// tip where a region has none, create, pause, resume, delete, the one-time password), what a
// viewer sees, the security headers, and that no request leaves the origin. Screenshots go to
// test-artifacts/console/ beside the binary; axe-core checks each page.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FakeKms, fakeServer, tempDir } from '../integration/harness.mjs';
import { browserSkipReason, launchBrowser, MOBILE, DESKTOP, signIn } from './browser.mjs';

const skipReason = browserSkipReason();
const skip = skipReason || false;
if (skipReason) console.log(skipReason);

let server;
let fake;
let b;
let page;

before(async () => {
  fake = new FakeKms(tempDir());
  server = await fakeServer(tempDir(), fake).start();
  if (!skip) {
    b = await launchBrowser(server.url);
    page = b.page;
  }
});

after(async () => {
  if (b) await b.close();
  if (server) await server.stop();
});

test('GET / and the console assets carry the CSP and the other security headers; unknown console files are 404', async () => {
  for (const p of ['/', '/console/app.js', '/console/style.css', '/console/pages/clusters.js', '/console/nope.js']) {
    const r = await fetch(`${server.url}${p}`);
    const csp = r.headers.get('content-security-policy') || '';
    assert.match(csp, /default-src 'self'/, `${p}: CSP`);
    for (const d of ["script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"]) {
      assert.ok(csp.includes(d), `${p}: CSP has ${d}: ${csp}`);
    }
    assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), `${p}: no unsafe-* in the CSP`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', p);
    assert.ok(r.headers.get('cache-control'), p);
    const text = await r.text();
    if (p === '/console/nope.js') {
      assert.equal(r.status, 404);
      assert.match(text, /no console file \/console\/nope\.js; the console starts at \//);
      continue;
    }
    assert.equal(r.status, 200, p);
    const type = r.headers.get('content-type');
    if (p === '/') {
      assert.equal(type, 'text/html; charset=utf-8');
      assert.match(text, /<script type="module" src="\/console\/app\.js">/);
      assert.ok(!/<script>|\sstyle=|\son[a-z]+=/.test(text), 'index.html has no inline script, style or handler');
    } else {
      assert.match(type, p.endsWith('.css') ? /^text\/css/ : /^text\/javascript/, p);
    }
    // Revalidation: the same ETag answers 304 with no body.
    const again = await fetch(`${server.url}${p}`, { headers: { 'If-None-Match': r.headers.get('etag') } });
    assert.equal(again.status, 304, `${p} revalidates`);
  }
  // The API is unchanged: still JSON errors, still bearer-protected.
  const api = await fetch(`${server.url}/api/v1/projects`);
  assert.equal(api.status, 401);
  // Who am I, for the console to offer only what the caller may do.
  const me = await server.api('GET', '/api/v1/users/me');
  assert.equal(me.status, 200);
  assert.deepEqual(me.json.org_roles, ['owner']);
  assert.match(me.json.org_id, /^org-/);
  assert.equal((await server.api('GET', '/api/v1/users/me', undefined, null)).status, 401);
  assert.equal((await fetch(`${server.url}/console/../api/v1/projects`)).status, 401, 'dot segments resolve before routing');
});

test('sign in with an API token; a bad token is refused with a message', { skip }, async () => {
  await page.goto(`${server.url}/`);
  await b.shot('sign-in', { mobile: true });
  await b.checkA11y('sign-in');
  await page.getByLabel('API token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(/The server refused this token/).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');
  await signIn(page, server.url, server.token);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('keyward.token')), server.token);
  // The reference's words in the left navigation and the switcher in the upper-left corner.
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const name of ['Projects', 'Clusters', 'Encryption Access', 'Audit Log']) {
    assert.ok(await nav.getByRole('link', { name }).isVisible(), `nav link ${name}`);
  }
  assert.ok(await nav.getByText('Project Settings').isVisible());
  const box = await page.getByRole('combobox', { name: 'Organization' }).boundingBox();
  assert.ok(box.x < 300 && box.y < 100, `switcher in the upper-left corner: ${JSON.stringify(box)}`);
});

test('Projects: Create New Project with CMEK and without, then switch to it', { skip }, async () => {
  await page.goto(`${server.url}/#/projects`);
  await page.getByRole('heading', { name: 'Projects', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Create New Project' }).click();
  await page.getByLabel('Project name').fill('payments');
  await page.getByLabel(/Enable CMEK/).check();
  await b.shot('projects-create');
  await b.checkA11y('projects-create');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('row', { name: /payments/ }).getByText('CMEK enabled').waitFor();

  await page.getByRole('button', { name: 'Create New Project' }).click();
  await page.getByLabel('Project name').fill('web-cache');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('row', { name: /web-cache/ }).getByText('Escrow key').waitFor();
  // A refusal is shown in the server's words, and nothing is created.
  await page.getByRole('button', { name: 'Create New Project' }).click();
  await page.getByLabel('Project name').fill('payments');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByText(/Project not created: .*payments/).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();

  const projects = (await server.api('GET', '/api/v1/projects')).json.items;
  assert.equal(projects.find((p) => p.name === 'payments').cmek_enabled, true);
  assert.equal(projects.find((p) => p.name === 'web-cache').cmek_enabled, false);
  assert.equal(projects.filter((p) => p.name === 'payments').length, 1);
  await page.getByRole('combobox', { name: 'Project' }).selectOption({ label: 'payments (CMEK)' });
  await page.getByRole('button', { name: /payments \(current project\)/ }).waitFor();
  await b.shot('projects', { mobile: true });
  await b.checkA11y('projects');
});

test('Clusters: the key is matched, a region without one shows the tip; create, pause, resume (a disabled key is named), delete', { skip }, async () => {
  const payments = (await server.api('GET', '/api/v1/projects')).json.items.find((p) => p.name === 'payments');
  // The customer's side: an active Azure key for eastus (the wizard is tested elsewhere).
  const key = (await server.api('POST', `/api/v1/projects/${payments.id}/encryption-keys`,
    { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-payments', key_name_prefix: 'tidb-cmek' } })).json;
  fake.createKey(key.key_name, { region: 'eastus', granted: true });
  assert.equal((await server.api('POST', `/api/v1/projects/${payments.id}/encryption-keys/${key.id}:test`)).json.state, 'active');

  await page.goto(`${server.url}/#/clusters`);
  await page.getByRole('button', { name: 'Create Cluster' }).click();
  await page.getByLabel('Cluster name').fill('orders');
  await page.getByLabel('Cloud provider').selectOption('azure');
  await page.getByLabel('Region').selectOption('westus');
  const tip = page.locator('[data-tip=no-key]');
  await tip.getByText(/No encryption key is configured for Azure in westus/).waitFor();
  assert.equal(await tip.getByRole('link', { name: 'Project Settings > Encryption Access' }).getAttribute('href'), '#/project-settings/encryption-access');
  assert.ok(await page.locator('form').getByRole('button', { name: 'Create Cluster' }).isDisabled(), 'no create without a key');
  await b.shot('clusters-tip');
  await page.getByLabel('Region').selectOption('eastus');
  await page.getByText(new RegExp(`Encryption key \\(matched\\): ${key.key_name}`)).waitFor();
  await b.shot('clusters-create');
  await b.checkA11y('clusters-create');
  await page.locator('form').getByRole('button', { name: 'Create Cluster' }).click();

  // The one-time password, with the endpoint and the redis-cli command, each with Copy.
  const created = page.locator('[data-secret-panel]');
  await created.getByRole('heading', { name: 'Cluster orders created' }).waitFor();
  const password = await created.locator('[aria-label="Copy password"]').getAttribute('data-copy-text');
  assert.match(password, /\S{16,}/);
  const cluster = (await server.api('GET', `/api/v1/projects/${payments.id}/clusters`)).json.items.find((c) => c.name === 'orders');
  const port = cluster.endpoint.split(':').pop();
  assert.ok(await created.getByText(`redis-cli -h 127.0.0.1 -p ${port} --user default --askpass`).isVisible());
  await b.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: b.origin });
  await created.getByRole('button', { name: 'Copy redis-cli command' }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `redis-cli -h 127.0.0.1 -p ${port} --user default --askpass`);
  await b.shot('clusters-created');
  await created.getByRole('button', { name: /Done/ }).click();
  assert.ok(!(await page.content()).includes(password), 'the password leaves the page on Done');

  const row = page.getByRole('row', { name: /orders/ });
  await row.getByText('available').waitFor();
  assert.ok(await row.getByText(key.key_name).isVisible(), 'the list names the key');
  assert.ok(await row.getByText(/version v1/).isVisible(), 'the list shows the key version');
  await b.shot('clusters', { mobile: true });
  await b.checkA11y('clusters');

  await row.getByRole('button', { name: 'Pause orders' }).click();
  await row.getByText('paused').waitFor();
  fake.update(key.key_name, { enabled: false });  // the customer disables the key
  await row.getByRole('button', { name: 'Resume orders' }).click();
  await page.locator('.action-errors').getByText(new RegExp(`Resume of cluster orders failed: .*${key.key_name}`)).waitFor();
  await b.shot('clusters-resume-refused');
  fake.update(key.key_name, { enabled: true });
  await row.getByRole('button', { name: 'Resume orders' }).click();
  await row.getByText('available').waitFor();
  assert.equal(await page.locator('.action-errors').textContent(), '', 'the error clears once resumed');

  // The cluster's page: state, connect, encryption; never the password.
  await row.getByRole('link', { name: 'orders' }).click();
  await page.getByRole('heading', { name: 'orders', level: 1 }).waitFor();
  await page.getByText(`redis-cli -h 127.0.0.1 -p ${port} --user default --askpass`).waitFor();
  assert.ok(!(await page.content()).includes(password));
  await b.shot('cluster-detail', { mobile: true });
  await b.checkA11y('cluster-detail');
  // Reset Password: the new one only on explicit reveal.
  await page.getByRole('button', { name: 'Reset Password' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Reset Password' }).click();
  await page.getByRole('button', { name: 'Reveal password' }).waitFor();
  assert.equal(await page.locator('[aria-label="Copy password"]').count(), 0, 'hidden until revealed');
  await page.getByRole('button', { name: 'Reveal password' }).click();
  const fresh = await page.locator('[aria-label="Copy password"]').getAttribute('data-copy-text');
  assert.ok(fresh && fresh !== password, 'a new password');
  await page.getByRole('button', { name: /Done/ }).click();

  // Delete: the confirmation names the cluster and wants its name typed.
  await page.goto(`${server.url}/#/clusters`);
  await page.getByRole('row', { name: /orders/ }).getByRole('button', { name: 'Delete orders' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete cluster orders?' });
  const confirmDelete = dialog.getByRole('button', { name: 'Delete' });
  assert.ok(await confirmDelete.isDisabled());
  await dialog.getByLabel('Type orders to confirm').fill('orders');
  await b.shot('clusters-delete-confirm');
  await confirmDelete.click();
  await page.getByText(/No clusters in this project yet/).waitFor();
  const after = (await server.api('GET', `/api/v1/clusters/${cluster.id}`)).json;
  assert.equal(after.state, 'deleted');
});

test('a viewer sees no create buttons and is told why', { skip }, async () => {
  const plain = (await server.api('POST', '/api/v1/projects', { name: 'viewed' })).json;
  const viewer = (await server.api('POST', `/api/v1/projects/${plain.id}/members`, { name: 'vera', role: 'project_viewer' })).json;
  const p2 = await b.newPage();
  await signIn(p2, server.url, viewer.token);
  await p2.goto(`${server.url}/#/projects`);
  await p2.getByText(/You cannot create projects/).waitFor();
  assert.equal(await p2.getByRole('button', { name: 'Create New Project' }).count(), 0);
  await p2.goto(`${server.url}/#/clusters`);
  await p2.getByText(/project_viewer role in this project/).waitFor();
  assert.equal(await p2.getByRole('button', { name: 'Create Cluster' }).count(), 0);
  await b.shot('viewer-clusters', { p: p2 });
  await b.checkA11y('viewer-clusters', { p: p2 });
  // Removed from the project, the viewer's token stops working: the next call signs out.
  assert.equal((await server.api('DELETE', `/api/v1/projects/${plain.id}/members/${viewer.user_id}`)).status, 200);
  await p2.getByRole('link', { name: 'Projects' }).click();
  await p2.getByRole('link', { name: 'Clusters' }).click();  // lists clusters: a 401 now
  await p2.getByText(/You were signed out: .*Sign in again/).waitFor();
  assert.equal(await p2.evaluate(() => sessionStorage.length), 0);
  // A project_creator (not an owner) may create projects, but not CMEK ones, and is told why.
  const creator = (await server.api('POST', `/api/v1/projects/${plain.id}/members`, { name: 'cora', role: 'project_member' })).json;
  assert.equal((await server.api('PATCH', `/api/v1/users/${creator.user_id}`, { project_creator: true })).status, 200);
  await signIn(p2, server.url, creator.token);
  await p2.goto(`${server.url}/#/projects`);
  await p2.getByRole('button', { name: 'Create New Project' }).click();
  assert.ok(await p2.getByLabel(/Enable CMEK/).isDisabled());
  await p2.getByText(/Only organization owners can create CMEK-enabled projects/).waitFor();
  await p2.getByLabel('Project name').fill('cora-own');
  await p2.getByRole('button', { name: 'Confirm' }).click();
  await p2.getByRole('row', { name: /cora-own/ }).waitFor();
  await p2.getByRole('link', { name: 'Clusters' }).click();
  await p2.getByRole('heading', { name: 'Clusters', level: 1 }).waitFor();
  assert.equal(await p2.getByRole('button', { name: 'Create Cluster' }).count(), 1, 'a member creates clusters');
  await p2.close();
});

test('the navigation collapses at 390×844 and stays keyboard usable', { skip }, async () => {
  await signIn(page, server.url, server.token);
  await page.setViewportSize(MOBILE);
  const menu = page.getByRole('button', { name: 'Menu' });
  assert.ok(await menu.isVisible());
  assert.ok(!(await page.getByRole('link', { name: 'Audit Log' }).isVisible()), 'nav hidden behind Menu');
  await menu.focus();
  await page.keyboard.press('Enter');
  assert.equal(await menu.getAttribute('aria-expanded'), 'true');
  await page.getByRole('link', { name: 'Projects' }).focus();
  await page.keyboard.press('Escape');  // closes the menu, focus back on Menu
  assert.equal(await menu.getAttribute('aria-expanded'), 'false');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Menu');
  await page.keyboard.press('Enter');
  await page.getByRole('link', { name: 'Clusters' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Clusters', level: 1 }).waitFor();
  assert.ok(!(await page.getByRole('link', { name: 'Audit Log' }).isVisible()), 'nav closes after choosing');
  await b.shot('mobile-nav', { mobile: true });
  await page.setViewportSize(DESKTOP);
  // Visible focus: the focused control draws an outline.
  await page.getByRole('link', { name: 'Projects' }).focus();
  await page.keyboard.press('Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none');
});

test('sign-out clears the token and returns to sign-in; no request ever left the origin', { skip }, async () => {
  await signIn(page, server.url, server.token);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to keyward' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'sessionStorage is empty');
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in to keyward' }).waitFor();
  b.assertClean();
  // The guards themselves. The page's CSP refuses a fetch to elsewhere (connect-src 'self'), and
  // the watch reports the refusal; a navigation elsewhere is caught by the route and never sent.
  await page.evaluate(() => fetch('http://192.0.2.1/probe').catch(() => {}));
  for (let i = 0; i < 40 && b.problems.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(b.problems.splice(0).join('\n'), /CSP: .*192\.0\.2\.1/);
  await page.goto('http://192.0.2.1/probe').catch(() => {});
  assert.deepEqual(b.foreign.splice(0), ['http://192.0.2.1/probe']);
});

test('an inaccessible cluster says why and what to do', { skip }, async () => {
  // A server of its own whose key monitor looks every second, so the key's loss shows quickly.
  const fake2 = new FakeKms(tempDir());
  const s2 = await fakeServer(tempDir(), fake2, ['--key-check-interval', '1']).start();
  const b2 = await launchBrowser(s2.url);
  try {
    const project = (await s2.api('POST', '/api/v1/projects', { name: 'cut', cmek_enabled: true })).json;
    const key = (await s2.api('POST', `/api/v1/projects/${project.id}/encryption-keys`,
      { provider: 'azure-key-vault', region: 'eastus', azure: { key_vault_name: 'kv-cut', key_name_prefix: 'cut' } })).json;
    fake2.createKey(key.key_name, { region: 'eastus', granted: true });
    assert.equal((await s2.api('POST', `/api/v1/projects/${project.id}/encryption-keys/${key.id}:test`)).json.state, 'active');
    const c = (await s2.api('POST', `/api/v1/projects/${project.id}/clusters`,
      { name: 'ledger', cloud_provider: 'azure', region: 'eastus', tier: 'dedicated' })).json;
    fake2.update(key.key_name, { enabled: false });
    let state = '';
    for (let i = 0; i < 100 && state !== 'inaccessible'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      state = (await s2.api('GET', `/api/v1/clusters/${c.id}`)).json.state;
    }
    assert.equal(state, 'inaccessible');
    await signIn(b2.page, s2.url, s2.token);
    await b2.page.goto(`${s2.url}/#/clusters/${c.id}`);
    await b2.page.getByRole('heading', { name: 'ledger', level: 1 }).waitFor();
    const why = b2.page.locator('.state-why');
    await why.getByText(/Why:/).waitFor();
    assert.match(await why.textContent(), new RegExp(`${key.key_name}[\\s\\S]*What to do: .*enable the key`));
    assert.ok(await b2.page.getByRole('button', { name: 'Resume ledger' }).isVisible());
    await b2.shot('cluster-inaccessible', { mobile: true });
    await b2.checkA11y('cluster-inaccessible');
    b2.assertClean();
  } finally {
    await b2.close();
    await s2.stop();
  }
});
