// What the cluster list and a cluster's page share: why a cluster is unusable and what to do,
// the connect command, the pause/resume/delete buttons and the one-time password panel.
import { errorMessage } from './api.js';
import { codeWithCopy, confirmDialog, h, notice } from './ui.js';

export const TRANSITIONAL = new Set(['creating', 'deleting']);

export const CLOUD_LABELS = { aws: 'AWS', azure: 'Azure', gcp: 'Google Cloud' };
export const KEY_PROVIDER_FOR_CLOUD = { aws: 'aws-kms', azure: 'azure-key-vault' };
export const PROVIDER_LABELS = { 'aws-kms': 'AWS KMS', 'azure-key-vault': 'Azure Key Vault', escrow: 'escrow key' };

// What to do, by the cause the server recorded with an inaccessible or degraded state.
const ADVICE = {
  key: 'keyward cannot use this cluster\'s encryption key. Fix it in your key management service (enable the key, restore keyward\'s role on it), then click Resume; keyward also retries on its own at every key check.',
  storage: 'A storage error: the disk is full or unwritable. Free space or fix the disk; keyward retries at every storage check, or click Resume.',
  corruption: 'Files of this cluster are damaged. Restore from a backup, or repair it with keyward cluster repair (README: Damaged files).',
  port: 'Another process holds this cluster\'s port. Stop it, or restart keyward serve with --allow-port-change.',
};

// For inaccessible, degraded and failed clusters: why (the server's message) and what to do.
export function stateExplanation(c) {
  if (!['inaccessible', 'degraded', 'failed'].includes(c.state)) return null;
  const advice = ADVICE[c.state_cause]
    || (c.state === 'failed' ? 'Creation did not finish. Delete this cluster and create it again.'
      : c.state === 'degraded' ? 'The cluster is read-only until the cause is fixed; then click Resume.'
        : 'Fix the cause named above, then click Resume.');
  return h('div', { class: 'state-why' },
    c.state_message ? h('p', {}, h('strong', {}, 'Why: '), c.state_message) : null,
    h('p', {}, h('strong', {}, 'What to do: '), advice));
}

export function splitEndpoint(endpoint) {
  const i = String(endpoint || '').lastIndexOf(':');
  return i < 0 ? { host: endpoint, port: '' } : { host: endpoint.slice(0, i), port: endpoint.slice(i + 1) };
}

// --askpass keeps the password out of the shell history and the process list.
export function redisCliCommand(endpoint) {
  const { host, port } = splitEndpoint(endpoint);
  return `redis-cli -h ${host} -p ${port} --user default --askpass`;
}

export function connectBlock(c, ctx) {
  if (!c.endpoint) return h('p', { class: 'muted' }, `No endpoint: the cluster is not served while it is ${c.state}.`);
  return h('div', { class: 'connect' },
    h('p', { class: 'label' }, 'Endpoint'), codeWithCopy(c.endpoint, 'Copy', ctx.notify, 'endpoint'),
    h('p', { class: 'label' }, 'Connect with redis-cli (it asks for the password)'),
    codeWithCopy(redisCliCommand(c.endpoint), 'Copy', ctx.notify, 'redis-cli command'));
}

export function keyLabel(c) {
  const e = c.encryption || {};
  if (e.provider === 'escrow' || !e.provider) return 'Escrow key';
  return `${e.key_name || c.encryption_key_id} (${PROVIDER_LABELS[e.provider] || e.provider})`;
}

// The password a create or a reset answered, shown once. With `reveal`, hidden until the user
// asks (after a reset, someone may be looking over the shoulder); the panel and the password
// leave the page on Done.
export function passwordPanel(c, ctx, { reveal = false, title } = {}) {
  const panel = h('section', { class: 'panel notice-success', 'aria-labelledby': 'pw-title', dataset: { secretPanel: '' } });
  const done = h('button', { type: 'button', class: 'primary' }, 'Done: I stored the password');
  done.addEventListener('click', () => {
    panel.remove();
    document.querySelector('#main h1')?.focus();  // not <body>: keyboard users stay on the page
  });
  const body = h('div', {});
  const showSecret = () => body.replaceChildren(
    h('p', { class: 'label' }, 'Password'),
    codeWithCopy(c.password, 'Copy', ctx.notify, 'password'));
  if (reveal) {
    const revealButton = h('button', { type: 'button' }, 'Reveal password');
    revealButton.addEventListener('click', () => { showSecret(); body.querySelector('button')?.focus(); });
    body.append(revealButton);
  } else {
    showSecret();
  }
  panel.append(
    h('h2', { id: 'pw-title', tabindex: '-1' }, title || `Cluster ${c.name} created`),
    h('p', {}, 'This password is shown once: keyward keeps only a hash of it. Store it now; if it is lost, Reset Password makes a new one.'),
    body,
    connectBlock(c, ctx),
    h('div', { class: 'form-actions' }, done));
  return panel;
}

// Pause, Resume and Delete as the cluster's state allows; nothing for viewers. `after(result)`
// runs when an action finished ({ ok, message }).
export function clusterActions(c, ctx, after) {
  if (!ctx.user.can.manageClusters) return null;
  const buttons = [];
  const run = async (button, label, doIt) => {
    button.disabled = true;
    const r = await doIt();
    button.disabled = false;
    const ok = r.status >= 200 && r.status < 300;
    const message = ok ? `${label} of cluster ${c.name}: done, it is ${r.body.state}` : `${label} of cluster ${c.name} failed: ${errorMessage(r)}`;
    ctx.notify(message, ok ? 'success' : 'error');
    after({ ok, message, cluster: r.body, from: button.getAttribute('aria-label') });
  };
  const id = encodeURIComponent(c.id);
  if (['available', 'degraded'].includes(c.state)) {
    const b = h('button', { type: 'button', 'aria-label': `Pause ${c.name}` }, 'Pause');
    b.addEventListener('click', () => run(b, 'Pause', () => ctx.api('POST', `/clusters/${id}:pause`)));
    buttons.push(b);
  }
  if (['paused', 'inaccessible', 'degraded'].includes(c.state)) {
    const b = h('button', { type: 'button', 'aria-label': `Resume ${c.name}` }, 'Resume');
    b.addEventListener('click', () => run(b, 'Resume', () => ctx.api('POST', `/clusters/${id}:resume`)));
    buttons.push(b);
  }
  if (!['deleting', 'deleted', 'creating'].includes(c.state)) {
    const b = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${c.name}` }, 'Delete');
    b.addEventListener('click', async () => {
      const yes = await confirmDialog({
        title: `Delete cluster ${c.name}?`,
        message: h('div', {},
          h('p', {}, `Deleting ${c.name} (${c.id}) destroys its key dictionary first, then its files: its data cannot be recovered, even with the encryption key. Its backups are kept and stay restorable.`)),
        confirmLabel: 'Delete',
        danger: true,
        typeToConfirm: c.name,
      });
      if (yes) await run(b, 'Delete', () => ctx.api('DELETE', `/clusters/${id}`));
    });
    buttons.push(b);
  }
  return buttons.length ? h('div', { class: 'row-actions' }, buttons) : null;
}

// After an action redrew the list or the page, the button that was used is gone: focus goes to
// the same button if it is back ("Pause orders"), else the first action of that cluster
// ("Resume orders" after a pause), else the page's heading — never <body>, where a keyboard user
// would have to start from the top again.
export function refocus(container, clusterId, label) {
  if (!container.isConnected) return;
  const row = [...container.querySelectorAll('[data-cluster-id]')].find((el) => el.dataset.clusterId === clusterId) || container;
  const same = label ? [...row.querySelectorAll('button')].find((el) => el.getAttribute('aria-label') === label) : null;
  const target = same || row.querySelector('.row-actions button') || row.querySelector('a') || document.querySelector('#main h1');
  target?.focus();
}

export function actionError(message) {
  return notice('error', h('p', {}, message));
}
