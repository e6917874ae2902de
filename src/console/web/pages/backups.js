// Backups of one cluster (#/clusters/<id>/backups): list, create, restore into a new cluster,
// delete; a running backup's progress is polled until it finishes. Without a cluster in the
// route, the page asks which cluster.
import { h, clear, labelCells, call, listAll, fmtTime, fmtBytes, canMember, canOwn, useStyles, showError } from './kit.js';
import { passwordPanel } from '../clusters-common.js';

const POLL_MS = 1000;

export function clusterIdFrom(params) {
  if (!params) return '';
  return params.cluster_id || params.clusterId || params.id || (Array.isArray(params) ? params[0] : '') || '';
}

export async function render(root, ctx) {
  useStyles();
  const project = ctx.project;
  const clusterId = clusterIdFrom(ctx.params);
  clear(root, h('h1', { id: 'kw-page-title' }, 'Backups'));
  const errors = h('div', { class: 'kw-errors' });
  root.append(errors);
  if (!clusterId) return pickCluster(root, ctx, project, errors);

  let cluster;
  try {
    cluster = await call(ctx, 'GET', `/clusters/${encodeURIComponent(clusterId)}`);
  } catch (e) {
    return showError(ctx, errors, e, 'Could not read the cluster: ');
  }
  clear(root.querySelector('h1'), `Backups of cluster ${cluster.name}`);
  root.append(h('p', { class: 'muted kw-crumb' },
    h('a', { href: `#/clusters/${encodeURIComponent(cluster.id)}` }, cluster.name), ` — ${cluster.state}, ${cluster.cloud_provider}/${cluster.region}. `,
    'Backups are encrypted under the cluster\'s own key (', cluster.encryption?.key_name || cluster.encryption_key_id || 'escrow', ') and restore into a new cluster.'));
  const toolbar = h('div', { class: 'kw-toolbar' });
  const live = h('p', { class: 'kw-summary', role: 'status', 'aria-live': 'polite' });
  const table = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Backups table' });
  const restoreHost = h('div', { class: 'kw-restore-host' });
  root.append(toolbar, live, table, restoreHost);

  let timer = null;
  let watching = ''; // the running backup the status line follows
  let backups = [];
  const refresh = async () => {
    clearTimeout(timer);
    if (ctx.signal?.aborted || (!table.isConnected && backups.length)) return; // the page was left: stop polling
    try {
      backups = await listAll(ctx, `/clusters/${encodeURIComponent(cluster.id)}/backups`);
      clear(errors);
    } catch (e) {
      showError(ctx, errors, e, 'Could not list the backups: ');
      return;
    }
    drawTable(table, backups, { onRestore: openRestore, onDelete: remove, canRestore: canMember(ctx), canDelete: canOwn(ctx) });
    const running = backups.filter((b) => b.state === 'running');
    if (running.length) {
      watching = running[0].id;
      clear(live, `Backup ${watching} running: ${Math.round((running[0].progress || 0) * 100)}%`);
      timer = setTimeout(() => { if (table.isConnected && !ctx.signal?.aborted) refresh(); }, POLL_MS);
    } else if (watching) {
      const done = backups.find((b) => b.id === watching);
      clear(live, done ? `Backup ${done.id} ${done.state}${done.error ? `: ${done.error}` : ''}.` : '');
      watching = '';
    }
  };

  if (canMember(ctx)) {
    const createBtn = h('button', { type: 'button', class: 'primary', id: 'kw-create-backup' }, 'Create Backup');
    createBtn.addEventListener('click', async () => {
      createBtn.disabled = true;
      try {
        const b = await call(ctx, 'POST', `/clusters/${encodeURIComponent(cluster.id)}/backups`);
        clear(live, `Backup ${b.id} started.`);
      } catch (e) {
        showError(ctx, errors, e, 'Create Backup: ');
      } finally {
        createBtn.disabled = false;
      }
      await refresh();
    });
    toolbar.append(createBtn);
  }

  const openRestore = (b) => {
    const name = h('input', { id: 'kw-restore-name', name: 'name', required: true, autocomplete: 'off', value: `${cluster.name}-restored`, 'aria-describedby': 'kw-restore-hint' });
    const out = h('div', { 'aria-live': 'polite' });
    // Beside the form, outside its live region: a password is not read out unasked.
    const secret = h('div', {});
    const go = h('button', { type: 'submit', class: 'primary' }, 'Restore');
    const form = h('form', { class: 'panel kw-restore', 'aria-labelledby': 'kw-restore-title', novalidate: true },
      h('h2', { id: 'kw-restore-title', tabindex: '-1' }, `Restore backup ${b.id}`),
      h('p', { id: 'kw-restore-hint' }, `Restores the backup of ${fmtTime(b.created_at)} into a new cluster in this project, under the same encryption key; ${cluster.name} is not changed.`),
      h('p', { class: 'kw-field' }, h('label', { for: 'kw-restore-name' }, 'New cluster name'), name),
      h('div', { class: 'kw-toolbar' }, go, h('button', { type: 'button', onclick: () => clear(restoreHost) }, 'Cancel')),
      out);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!name.value.trim()) return showError(ctx, out, 'Enter a name for the new cluster.');
      go.disabled = true;
      form.setAttribute('aria-busy', 'true');
      // The API answers a restore when it is done and reports no progress on the way, so the
      // page shows the time elapsed rather than a made-up percentage.
      const started = Date.now();
      const elapsed = h('span', { class: 'kw-elapsed' }, '');
      clear(secret);
      clear(out, h('p', {}, `Restoring ${b.id}: verifying and decrypting every chunk… `, elapsed));
      const tick = setInterval(() => { elapsed.textContent = `${Math.round((Date.now() - started) / 1000)} s`; }, 1000);
      try {
        const c = await call(ctx, 'POST', `/backups/${encodeURIComponent(b.id)}:restore`, { name: name.value.trim() });
        // The new cluster's password sits in the same one-time panel as a created cluster's:
        // it leaves the page on Done.
        clear(out, h('div', { class: 'notice notice-success', role: 'status' },
          h('p', {}, 'Restored as cluster ', h('a', { href: `#/clusters/${encodeURIComponent(c.id)}` }, c.name), ` (${c.state}), endpoint ${c.endpoint}.`)));
        if (c.password) clear(secret, passwordPanel(c, ctx, { title: `Password of cluster ${c.name}` }));
        ctx.notify?.(`Restored ${b.id} as cluster ${c.name}`, 'info');
      } catch (err) {
        showError(ctx, out, err, 'Restore failed (nothing was created): ');
      } finally {
        clearInterval(tick);
        go.disabled = false;
        form.removeAttribute('aria-busy');
      }
    });
    clear(restoreHost, form, secret);
    form.querySelector('h2').focus();
  };

  const remove = async (b) => {
    if (!window.confirm(`Delete backup ${b.id} of ${cluster.name}? It cannot be restored afterwards.`)) return;
    try {
      await call(ctx, 'DELETE', `/backups/${encodeURIComponent(b.id)}`);
      clear(live, `Backup ${b.id} deleted.`);
    } catch (e) {
      showError(ctx, errors, e, 'Delete: ');
    }
    await refresh();
  };

  await refresh();
}

async function pickCluster(root, ctx, project, errors) {
  if (!project) {
    root.append(h('p', {}, 'Choose a project with the combo box in the upper-left corner first.'));
    return;
  }
  let clusters = [];
  try {
    clusters = (await listAll(ctx, `/projects/${encodeURIComponent(project.id)}/clusters`)).filter((c) => c.state !== 'deleted');
  } catch (e) {
    return showError(ctx, errors, e, 'Could not list the clusters: ');
  }
  if (!clusters.length) {
    root.append(h('p', { class: 'muted' }, 'No cluster in this project yet: backups belong to a cluster.'));
    return;
  }
  root.append(h('p', {}, 'Backups belong to a cluster. Choose one:'),
    h('ul', { class: 'kw-links' }, clusters.map((c) => h('li', {},
      h('a', { href: `#/clusters/${encodeURIComponent(c.id)}/backups` }, `${c.name} (${c.cloud_provider}/${c.region}, ${c.state})`)))));
}

function drawTable(host, backups, { onRestore, onDelete, canRestore, canDelete }) {
  if (!backups.length) {
    clear(host, h('p', { class: 'muted' }, 'No backup of this cluster yet.'));
    return;
  }
  const sorted = [...backups].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  clear(host, labelCells(h('table', { class: 'kw-table', 'aria-label': 'Backups' },
    h('thead', {}, h('tr', {}, ['Created (UTC)', 'Backup', 'State', 'Progress', 'Size', 'Key version', 'Actions']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, sorted.map((b) => {
      const pct = Math.round((b.progress || 0) * 100);
      const actions = h('td', { class: 'kw-actions' });
      if (b.state === 'completed' && canRestore) {
        actions.append(h('button', { type: 'button', onclick: () => onRestore(b), 'aria-label': `Restore backup ${b.id}` }, 'Restore'));
      }
      if (b.state !== 'running' && canDelete) {
        actions.append(h('button', { type: 'button', class: 'danger', onclick: () => onDelete(b), 'aria-label': `Delete backup ${b.id}` }, 'Delete'));
      }
      return h('tr', { 'data-backup-id': b.id, 'data-state': b.state },
        h('td', {}, fmtTime(b.created_at)),
        h('td', {}, h('code', {}, b.id)),
        h('td', {}, h('span', { class: `badge state-${b.state}` }, b.state), b.error ? h('div', { class: 'kw-problem' }, b.error) : null),
        h('td', {}, h('progress', { max: '100', value: String(pct), 'aria-label': `Progress of ${b.id}` }), ` ${pct}%`),
        h('td', {}, `${fmtBytes(b.bytes)}${b.files ? `, ${b.files} files` : ''}`),
        h('td', {}, b.key_version || '—'),
        actions);
    })))));
}
