// Shared helpers for the web console's browser tests: Debian's Chromium driven by
// playwright-core, a guard that fails the test on any request leaving the console's origin (or
// any CSP violation or page error), screenshots at 1280×800 and 390×844 kept as test artifacts,
// and an axe-core accessibility check.
//
//   const b = await launchBrowser(server.url);   // b.page, b.context
//   await b.shot('projects');                     // test-artifacts/console/projects-1280x800.png
//   await b.checkA11y('projects');                // no serious or critical axe violations
//   b.assertClean();                              // no foreign request, CSP violation, page error
//   await b.close();
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { keywardBin, tempDir } from '../integration/harness.mjs';

const require = createRequire(import.meta.url);

export const chromiumPath = process.env.KEYWARD_CHROMIUM || '/usr/bin/chromium';

// Why the browser tests cannot run here, or null. Callers skip LOUDLY with it.
export function browserSkipReason() {
  if (!fs.existsSync(chromiumPath)) {
    return `SKIPPED LOUDLY: ${chromiumPath} is missing; install Debian's chromium (scripts/bootstrap) to run the web console's browser tests`;
  }
  try {
    require.resolve('playwright-core');
    require.resolve('axe-core/axe.min.js');
  } catch {
    return 'SKIPPED LOUDLY: playwright-core or axe-core is missing from tests/node_modules (scripts/bootstrap installs them)';
  }
  return null;
}

// Where screenshots go: $KEYWARD_ARTIFACTS, else test-artifacts/console/ in the build dir of
// the keyward binary under test.
export function artifactsDir() {
  const dir = process.env.KEYWARD_ARTIFACTS || path.join(path.dirname(path.resolve(keywardBin)), 'test-artifacts', 'console');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export const DESKTOP = { width: 1280, height: 800 };
export const MOBILE = { width: 390, height: 844 };

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-extensions', '--no-default-browser-check'];

export async function launchBrowser(origin, { viewport = DESKTOP } = {}) {
  const { chromium } = await import('playwright-core');
  const profile = tempDir('kw-chromium-');
  // A persistent context on a fresh profile directory (launch() would pick its own): nothing
  // from another run or from the machine's user profile.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 60000,
  });
  context.setDefaultTimeout(20000);
  const allowed = new URL(origin).origin;
  const foreign = [];
  const problems = [];
  // Every request of every page goes through this route: one for another origin is recorded
  // (the test fails in assertClean) and never sent.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    let sameOrigin = false;
    try { sameOrigin = new URL(url).origin === allowed; } catch { /* unparsable: foreign */ }
    if (sameOrigin || url.startsWith('data:')) return route.continue();
    if (!foreign.includes(url)) foreign.push(url);  // the request event may have seen it first
    return route.abort('blockedbyclient');
  });
  const watch = (page) => {
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      const text = m.text();
      if (/Content Security Policy|Refused to (load|execute|apply|connect|frame)/i.test(text)) problems.push(`CSP: ${text}`);
    });
    page.on('request', (r) => {
      const url = r.url();
      try {
        if (!url.startsWith('data:') && new URL(url).origin !== allowed && !foreign.includes(url)) foreign.push(url);
      } catch { foreign.push(url); }
    });
  };
  context.on('page', watch);
  const page = context.pages()[0] || await context.newPage();
  watch(page);

  const b = {
    context,
    page,
    origin: allowed,
    foreign,
    problems,
    // A second tab: its own sessionStorage (another user signed in).
    async newPage() {
      const p = await context.newPage();
      return p;
    },
    // Screenshots of `p` at 1280×800, and with `mobile` also at 390×844 (then back).
    async shot(name, { p = page, mobile = false } = {}) {
      const dir = artifactsDir();
      const safe = name.replace(/[^A-Za-z0-9_.-]+/g, '-');
      const before = p.viewportSize();
      await p.setViewportSize(DESKTOP);
      await p.screenshot({ path: path.join(dir, `${safe}-1280x800.png`), fullPage: true });
      if (mobile) {
        await p.setViewportSize(MOBILE);
        await p.screenshot({ path: path.join(dir, `${safe}-390x844.png`), fullPage: true });
      }
      if (before) await p.setViewportSize(before);
    },
    // axe-core in the page (evaluated through the DevTools protocol, which the page's CSP does
    // not govern, so the CSP under test stays on): no serious or critical violation.
    async checkA11y(label, { p = page } = {}) {
      const source = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
      await p.evaluate(source);
      const result = await p.evaluate(async () => {
        // eslint-disable-next-line no-undef
        const r = await axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
      });
      const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      assert.deepEqual(bad, [], `${label}: axe-core found serious or critical accessibility violations:\n${JSON.stringify(bad, null, 2)}`);
      return result;
    },
    assertClean() {
      assert.deepEqual(foreign, [], `requests left the console's origin ${allowed}`);
      assert.deepEqual(problems, [], 'the console had page errors or CSP violations');
    },
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
  return b;
}

// Signs in on `p` with `token` through the sign-in form (signing out whoever was signed in);
// resolves when the shell is up.
export async function signIn(p, origin, token) {
  await p.goto(`${origin}/`);
  await p.evaluate(() => sessionStorage.clear());
  await p.reload();
  await p.getByLabel('API token').fill(token);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByRole('navigation', { name: 'Main' }).waitFor();
}
