// Project Settings > Encryption Access: the project's encryption keys, one per (provider,
// region), with state, last check and current key version; Create Encryption Key opens the
// wizard (key-wizard.js) that follows the reference's Step 2 one step at a time.
import { h, clear, labelCells, call, listAll, fmtTime, canOwn, useStyles, showError } from './kit.js';
import { openWizard } from './key-wizard.js';

const PROVIDER_NAMES = { 'azure-key-vault': 'Azure Key Vault', 'aws-kms': 'AWS KMS', escrow: 'keyward escrow key' };

export async function render(root, ctx) {
  useStyles();
  const project = ctx.project;
  clear(root, h('h1', { id: 'kw-page-title' }, 'Encryption Access'));
  if (!project) {
    root.append(h('p', {}, 'Choose a project with the combo box in the upper-left corner first.'));
    return;
  }
  root.append(h('p', { class: 'muted kw-crumb' }, `Project Settings › Encryption Access — project ${project.name}`));
  const errors = h('div', { class: 'kw-errors' });
  const toolbar = h('div', { class: 'kw-toolbar' });
  const table = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Encryption keys table' });
  const wizard = h('div', { class: 'kw-wizard-host' });
  root.append(errors, toolbar, table, wizard);

  if (!project.cmek_enabled) {
    toolbar.append(h('p', { class: 'notice notice-info' },
      `Project ${project.name} was created without CMEK: its clusters are encrypted under keyward's escrow key. ` +
      'CMEK is chosen when a project is created (Projects > Create New Project, organization owners only) and cannot be ' +
      'enabled for an existing project.'));
  }

  let keys = [];
  const refresh = async () => {
    try {
      keys = await listAll(ctx, `/projects/${encodeURIComponent(project.id)}/encryption-keys`);
      clear(errors);
    } catch (e) {
      showError(ctx, errors, e, 'Could not list the encryption keys: ');
      return;
    }
    renderTable(table, ctx, project, keys, { refresh, continueSetup });
  };
  const startWizard = (existing) => {
    openWizard(wizard, ctx, {
      project, keys, existing,
      onDone: async () => { await refresh(); },
      onClose: () => { clear(wizard); createBtn?.focus(); },
    });
  };
  const continueSetup = (key) => startWizard(key);

  let createBtn = null;
  if (project.cmek_enabled && canOwn(ctx)) {
    createBtn = h('button', { type: 'button', class: 'primary', onclick: () => startWizard(null) }, 'Create Encryption Key');
    toolbar.append(createBtn);
  } else if (project.cmek_enabled) {
    toolbar.append(h('p', { class: 'notice notice-info' }, 'Only the project owner or an organization owner creates encryption keys.'));
  }
  await refresh();
}

function renderTable(host, ctx, project, keys, { refresh, continueSetup }) {
  if (!keys.length) {
    clear(host, h('p', { class: 'muted' },
      'No encryption key yet. Each cloud provider needs one key per region before clusters can be created there: click Create Encryption Key.'));
    return;
  }
  const owner = canOwn(ctx);
  const rows = keys.map((k) => {
    const problem = k.state !== 'active' ? (k.last_check_error || k.status_message) : '';
    const actions = h('td', { class: 'kw-actions' },
      h('a', { href: `#/audit-log?key_id=${encodeURIComponent(k.id)}`, class: 'kw-link', 'aria-label': `Audit Log of the key for ${PROVIDER_NAMES[k.provider] || k.provider} ${k.region}` }, 'Audit Log'));
    if (owner && k.provider !== 'escrow') {
      if (k.state !== 'active') {
        actions.append(h('button', { type: 'button', onclick: () => continueSetup(k), 'aria-label': `Continue setup of the key for ${k.region}` }, 'Continue setup'));
      }
      actions.append(h('button', {
        type: 'button', class: 'danger', 'aria-label': `Delete the key record for ${PROVIDER_NAMES[k.provider] || k.provider} ${k.region}`,
        onclick: async (ev) => {
          if (!window.confirm(`Delete the key record ${k.key_name} (${k.region})? Clusters using it keep it: the server refuses while any cluster does.`)) return;
          ev.target.disabled = true;
          try {
            await call(ctx, 'DELETE', `/projects/${encodeURIComponent(project.id)}/encryption-keys/${encodeURIComponent(k.id)}`);
            ctx.notify?.(`Deleted the key record for ${k.region}`, 'info');
          } catch (e) {
            ctx.notify?.(e.message, 'error');
          }
          await refresh();
        },
      }, 'Delete'));
    }
    return h('tr', { 'data-key-id': k.id, 'data-state': k.state },
      h('td', {}, PROVIDER_NAMES[k.provider] || k.provider),
      h('td', {}, k.region || '—'),
      h('td', {}, h('code', {}, k.key_name)),
      h('td', {}, h('span', { class: `badge state-${k.state}` }, k.state),
        problem ? h('div', { class: k.state === 'failed' ? 'kw-problem' : 'muted' }, problem) : null),
      h('td', {}, fmtTime(k.last_check_at)),
      h('td', {}, k.current_version || '—'),
      actions);
  });
  clear(host, labelCells(h('table', { class: 'kw-table', 'aria-label': 'Encryption keys' },
    h('caption', {}, 'Encryption keys: one per cloud provider and region'),
    h('thead', {}, h('tr', {},
      ['Key Management Service', 'Region', 'Key name', 'State', 'Last check', 'Current key version', 'Actions']
        .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows))));
}
