// Audit Log: the project's audit events (or the organization's own, for organization owners),
// filtered on the server by cluster, encryption key, actor, action and time, newest first.
import { h, clear, labelCells, call, listAll, fmtTime, roleOf, useStyles, showError } from './kit.js';

const ACTIONS = ['cluster', 'cluster.create', 'cluster.pause', 'cluster.resume', 'cluster.delete', 'cluster.key_lost',
  'cluster.key_restored', 'encryption_key', 'encryption_key.create', 'encryption_key.test', 'encryption_key.lost',
  'encryption_key.heal', 'backup', 'backup.create', 'backup.restore', 'backup.delete', 'member', 'project.create', 'token'];

// <input type=datetime-local> value read as UTC (the table shows UTC too) → unix ms, or null.
export function utcMs(value) {
  if (!value) return null;
  const ms = Date.parse(`${value.length === 16 ? `${value}:00` : value}Z`);
  return Number.isNaN(ms) ? null : ms;
}

export async function render(root, ctx) {
  useStyles();
  const project = ctx.project;
  clear(root, h('h1', { id: 'kw-page-title' }, 'Audit Log'));
  if (!project) {
    root.append(h('p', {}, 'Choose a project with the combo box in the upper-left corner first.'));
    return;
  }
  root.append(h('p', { class: 'muted kw-crumb' }, `Who did what in project ${project.name}: key ids and versions, never secrets.`));
  const errors = h('div', { class: 'kw-errors' });
  const [clusters, keys] = await Promise.all([
    listAll(ctx, `/projects/${encodeURIComponent(project.id)}/clusters`).catch(() => []),
    listAll(ctx, `/projects/${encodeURIComponent(project.id)}/encryption-keys`).catch(() => []),
  ]);
  const pre = ctx.params || {};
  const field = (id, label, control, hint) => {
    if (hint) control.setAttribute('aria-describedby', `${id}-hint`);
    return h('div', { class: 'kw-field' }, h('label', { for: id }, label), control,
      hint ? h('span', { id: `${id}-hint`, class: 'hint' }, hint) : null);
  };
  const scope = roleOf(ctx) === 'owner' && project.org_id
    ? h('select', { id: 'kw-audit-scope' },
      h('option', { value: project.id }, `Project ${project.name}`),
      h('option', { value: project.org_id }, 'Organization (projects, members, tokens)'))
    : null;
  // A deep link (#/audit-log?cluster_id=…, from a cluster's page or a key's row) preselects its
  // filter; an id this project does not list (a cluster deleted long ago) still filters by id.
  const extra = (list, id) => (id && !list.some((x) => x.id === id) ? [{ id, name: id, key_name: id }] : []);
  const cluster = h('select', { id: 'kw-audit-cluster', name: 'cluster_id' }, h('option', { value: '' }, 'Any cluster'),
    [...clusters, ...extra(clusters, pre.cluster_id)].map((c) => h('option', { value: c.id, selected: c.id === pre.cluster_id }, c.name === c.id ? c.id : `${c.name} (${c.id})`)));
  const key = h('select', { id: 'kw-audit-key', name: 'key_id' }, h('option', { value: '' }, 'Any key'),
    [...keys, ...extra(keys, pre.key_id)].map((k) => h('option', { value: k.id, selected: k.id === pre.key_id }, k.key_name === k.id ? k.id : `${k.region || k.provider} ${k.key_name} (${k.id})`)));
  const actor = h('input', { id: 'kw-audit-actor', name: 'actor', autocomplete: 'off', value: pre.actor || '' });
  const action = h('input', { id: 'kw-audit-action', name: 'action', autocomplete: 'off', list: 'kw-audit-actions', value: pre.action || '' });
  const since = h('input', { id: 'kw-audit-since', name: 'since', type: 'datetime-local', step: '1' });
  const until = h('input', { id: 'kw-audit-until', name: 'until', type: 'datetime-local', step: '1' });
  const newest = h('input', { id: 'kw-audit-newest', type: 'checkbox', checked: true });
  const form = h('form', { class: 'kw-filters', role: 'search', 'aria-label': 'Filter audit events', novalidate: true },
    scope ? field('kw-audit-scope', 'Events of', scope) : null,
    field('kw-audit-cluster', 'Cluster', cluster),
    field('kw-audit-key', 'Encryption key', key),
    field('kw-audit-actor', 'Actor', actor, 'A user name or id; keyward for the server\'s own actions.'),
    field('kw-audit-action', 'Action', action, 'cluster.create, or cluster for every cluster action.'),
    h('datalist', { id: 'kw-audit-actions' }, ACTIONS.map((a) => h('option', { value: a }))),
    field('kw-audit-since', 'From (UTC)', since),
    field('kw-audit-until', 'To (UTC)', until),
    h('div', { class: 'kw-check-field' }, newest, h('label', { for: 'kw-audit-newest' }, ' Newest first')),
    h('div', { class: 'kw-toolbar' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply filters'),
      h('button', { type: 'reset' }, 'Clear filters')));
  const summary = h('p', { class: 'kw-summary', role: 'status', 'aria-live': 'polite' });
  const table = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Audit events table (scrolls sideways on narrow screens)' });
  const more = h('div', { class: 'kw-toolbar' });
  root.append(form, errors, summary, table, more);

  let rows = [];
  let loads = 0;
  let query = '';
  let path = '';
  const load = async (token) => {
    clear(errors);
    try {
      const page = await call(ctx, 'GET', `${path}?${query}&page_size=100${token ? `&page_token=${encodeURIComponent(token)}` : ''}`);
      rows = token ? rows.concat(page.items || []) : (page.items || []);
      drawTable(table, rows);
      clear(summary, `${rows.length} event${rows.length === 1 ? '' : 's'}${page.next_page_token ? ' (more available)' : ''}`);
      summary.dataset.loads = String(++loads); // tests wait for the next list, not for time
      clear(more, page.next_page_token
        ? h('button', { type: 'button', onclick: () => load(page.next_page_token) }, 'Load more events')
        : null);
    } catch (e) {
      showError(ctx, errors, e, 'Could not read the audit log: ');
    }
  };
  const apply = async () => {
    const q = new URLSearchParams();
    const org = scope && scope.value !== project.id;
    if (!org && cluster.value) q.set('cluster_id', cluster.value);
    if (!org && key.value) q.set('key_id', key.value);
    if (actor.value.trim()) q.set('actor', actor.value.trim());
    if (action.value.trim()) q.set('action', action.value.trim());
    const s = utcMs(since.value);
    const u = utcMs(until.value);
    if (since.value && s === null) return showError(ctx, errors, 'From is not a valid date and time.');
    if (until.value && u === null) return showError(ctx, errors, 'To is not a valid date and time.');
    if (s !== null) q.set('since_ms', String(s));
    if (u !== null) q.set('until_ms', String(u + 999)); // "To" includes its whole second
    q.set('order', newest.checked ? 'newest' : 'oldest');
    query = q.toString();
    // The address names the filters, so it can be bookmarked or shared (replaceState: no reload).
    const link = new URLSearchParams([...q].filter(([k]) => ['cluster_id', 'key_id', 'actor', 'action'].includes(k)));
    // Only while this page is shown: a user who already went elsewhere keeps that address.
    if (!ctx.signal?.aborted && location.hash.startsWith('#/audit-log')) {
      history.replaceState(null, '', `#/audit-log${link.toString() ? `?${link}` : ''}`);
    }
    path = `/projects/${encodeURIComponent(scope ? scope.value : project.id)}/audit-events`;
    cluster.disabled = key.disabled = org;
    await load('');
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  form.addEventListener('reset', () => setTimeout(() => { newest.checked = true; apply(); }, 0));
  scope?.addEventListener('change', apply);
  await apply();
}

function drawTable(host, events) {
  if (!events.length) {
    clear(host, h('p', { class: 'muted' }, 'No audit event matches these filters.'));
    return;
  }
  clear(host, labelCells(h('table', { class: 'kw-table kw-audit', 'aria-label': 'Audit events' },
    h('thead', {}, h('tr', {}, ['Time (UTC)', 'Actor', 'Action', 'Target', 'Encryption key', 'Key version', 'Result', 'Message']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, events.map((e) => h('tr', { 'data-action': e.action, 'data-result': e.result },
      h('td', {}, fmtTime(e.time)),
      h('td', {}, e.actor),
      h('td', {}, h('code', {}, e.action)),
      h('td', {}, e.target || '—'),
      h('td', {}, e.key_id || '—'),
      h('td', {}, e.key_version || '—'),
      h('td', {}, h('span', { class: `kw-result-${e.result}` }, e.result)),
      h('td', { class: 'kw-message' }, e.message || '')))))));
}
