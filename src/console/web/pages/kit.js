// Small helpers shared by the Encryption Access, Audit Log and Backups pages: element building
// without innerHTML (every text goes in as a text node, so nothing the API returns can become
// markup), API calls that throw the API's own error message, and formatting.

// h('button', {type: 'button', onclick: f}, 'Copy') → <button>. Attributes starting with "on"
// become listeners; `class`, `for`, aria-* and data-* are set as attributes; false/null skip.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// An API error carrying the server's message (which names the thing and the fix).
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `request failed (HTTP ${status})`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

// ctx.api(method, path, body) → the parsed body; throws ApiError on 4xx/5xx.
export async function call(ctx, method, path, body) {
  const r = await ctx.api(method, path, body);
  if (!r || r.status >= 400) throw new ApiError(r?.status ?? 0, r?.body);
  return r.body;
}

// Every item of a paged list (the API pages at most 500 per request).
export async function listAll(ctx, path, max = 5000) {
  const items = [];
  let token = '';
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await call(ctx, 'GET', `${path}${sep}page_size=500${token ? `&page_token=${encodeURIComponent(token)}` : ''}`);
    items.push(...(page.items || []));
    token = page.next_page_token || '';
  } while (token && items.length < max);
  return items;
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
}

export function fmtBytes(n) {
  if (!Number.isFinite(n) || n <= 0) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// The shell's Copy button when it offers one, else a plain one (navigator.clipboard). `what`
// names what is copied for assistive technology ("Copy full key name").
export function copyButton(ctx, text, label = 'Copy', what = '') {
  if (typeof ctx?.copyButton === 'function') return ctx.copyButton(text, label, what);
  const btn = h('button', { type: 'button', class: 'copy', 'aria-label': what ? `${label} ${what}` : null }, label);
  btn.dataset.copyText = text;
  btn.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      ctx?.notify?.('Copied', 'info');
    } catch {
      ctx?.notify?.('Copy failed: select the text and copy it by hand', 'error');
    }
  });
  return btn;
}

// A command or value the reader copies: <pre><code> with its Copy button beside it.
export function copyable(ctx, text, label = 'Copy', what = '') {
  return h('div', { class: 'kw-copyable' },
    h('pre', { tabindex: '0' }, h('code', {}, text)),
    copyButton(ctx, text, label, what));
}

// What the caller may do in this project: the shell's ctx.user.can when it has it (C1's shell:
// manageKeys for project owners and organization owners, manageClusters for members and up),
// else from the roles. The server enforces the same rules; hiding a button spares a 403.
export function roleOf(ctx) {
  const u = ctx.user || {};
  const orgRoles = u.org_roles || (u.org_role ? [u.org_role] : []);
  if (orgRoles.includes('owner')) return 'owner';
  return u.project_role || '';
}
export function canOwn(ctx) {
  if (ctx.user?.can && 'manageKeys' in ctx.user.can) return Boolean(ctx.user.can.manageKeys);
  const r = roleOf(ctx);
  return r === '' || r === 'owner' || r === 'project_owner';
}
export function canMember(ctx) {
  if (ctx.user?.can && 'manageClusters' in ctx.user.can) return Boolean(ctx.user.can.manageClusters);
  const r = roleOf(ctx);
  return r === '' || r === 'owner' || r === 'project_owner' || r === 'project_member';
}

// Names each cell after its column (data-label), so narrow screens can show every row as a
// card of "label: value" lines (pages.css) instead of a table wider than the screen.
export function labelCells(table) {
  const names = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
  for (const tr of table.querySelectorAll('tbody tr')) {
    [...tr.children].forEach((td, i) => { if (names[i]) td.dataset.label = names[i]; });
  }
  return table;
}

// Loads this helper set's stylesheet once (a <link>: the CSP allows same-origin styles only).
export function useStyles() {
  if (document.querySelector('link[data-kw-pages]')) return;
  const href = new URL('./pages.css', import.meta.url).pathname;
  document.head.append(h('link', { rel: 'stylesheet', href, 'data-kw-pages': '1' }));
}

// Shows an error in `where` (role=alert) and through the shell's live region.
export function showError(ctx, where, err, prefix = '') {
  const msg = `${prefix}${err?.message || err}`;
  if (where) clear(where, h('p', { class: 'notice notice-error', role: 'alert' }, msg));
  else ctx?.notify?.(msg, 'error');
}
