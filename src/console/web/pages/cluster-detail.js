// One cluster: state (and, when it is unusable, why and what to do), how to connect, its
// encryption, the actions, Reset Password (the new password revealed only on request) and a
// link to its backups.
import { errorMessage } from '../api.js';
import {
  actionError, CLOUD_LABELS, clusterActions, connectBlock, passwordPanel, PROVIDER_LABELS,
  refocus, stateExplanation, TRANSITIONAL,
} from '../clusters-common.js';
import { confirmDialog, formatTime, h, notice, pageHeader, stateBadge } from '../ui.js';

function props(pairs) {
  return h('dl', { class: 'props' }, pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

export async function render(root, ctx) {
  const id = ctx.params.id;
  const secretSlot = h('div', {});
  const errorSlot = h('div', {});
  const body = h('div', {}, h('p', {}, 'Loading the cluster…'));
  root.append(h('p', {}, h('a', { href: '#/clusters' }, '← Clusters')), body);
  let timer = null;
  ctx.signal.addEventListener('abort', () => clearTimeout(timer));

  const load = async (focusLabel = null) => {
    clearTimeout(timer);
    const r = await ctx.api('GET', `/clusters/${encodeURIComponent(id)}`);
    if (ctx.signal.aborted) return;
    if (r.status !== 200) {
      body.replaceChildren(pageHeader('Cluster'), notice('error', h('p', {}, `Cannot show cluster ${id}: ${errorMessage(r)}`)));
      return;
    }
    const c = r.body;
    // A link to another project's cluster: follow it into that project, so the switcher and the
    // roles the page offers are that project's.
    if (c.project_id !== ctx.project?.id && ctx.projects.some((p) => p.id === c.project_id)) {
      await ctx.setProject(c.project_id);
      return;
    }
    const after = (result) => {
      errorSlot.replaceChildren(result.ok ? '' : actionError(result.message));
      if (result.ok && result.cluster?.state === 'deleted') ctx.navigate('#/clusters');
      else load(result.from || '');
    };
    const actions = [];
    if (ctx.user.can.manageClusters && ['available', 'paused', 'degraded', 'inaccessible'].includes(c.state)) {
      const reset = h('button', { type: 'button' }, 'Reset Password');
      reset.addEventListener('click', async () => {
        const yes = await confirmDialog({
          title: `Reset the password of ${c.name}?`,
          message: 'The current password stops working at once and open connections to the cluster are closed. The new password is shown once.',
          confirmLabel: 'Reset Password',
          danger: true,
        });
        if (!yes) return;
        reset.disabled = true;
        const rr = await ctx.api('POST', `/clusters/${encodeURIComponent(c.id)}:reset-password`);
        reset.disabled = false;
        if (rr.status !== 200) {
          errorSlot.replaceChildren(actionError(`Reset Password of ${c.name} failed: ${errorMessage(rr)}`));
          ctx.notify(`Reset Password failed: ${errorMessage(rr)}`, 'error');
          return;
        }
        ctx.notify(`New password for ${c.name} ready: click Reveal password to see it`, 'success');
        const panel = passwordPanel(rr.body, ctx, { reveal: true, title: `New password for ${c.name}` });
        secretSlot.replaceChildren(panel);
        panel.querySelector('h2').focus();
      });
      actions.push(reset);
    }
    actions.push(clusterActions(c, ctx, after));
    const e = c.encryption || {};
    body.replaceChildren(
      pageHeader(c.name, actions),
      errorSlot, secretSlot,
      h('section', { class: 'panel', 'aria-labelledby': 'sec-state' },
        h('h2', { id: 'sec-state' }, 'State'), h('p', {}, stateBadge(c.state)), stateExplanation(c)),
      ['deleted', 'deleting'].includes(c.state) ? null : h('section', { class: 'panel', 'aria-labelledby': 'sec-connect' },
        h('h2', { id: 'sec-connect' }, 'Connect'), connectBlock(c, ctx),
        h('p', { class: 'hint' }, 'The password was shown once when the cluster was created. Lost it? Reset Password makes a new one.')),
      h('section', { class: 'panel', 'aria-labelledby': 'sec-enc' },
        h('h2', { id: 'sec-enc' }, 'Encryption'),
        props([
          ['Key management', PROVIDER_LABELS[e.provider] || e.provider],
          ['Encryption key', e.key_name || c.encryption_key_id],
          ['Key version', e.key_version || '—'],
          ['Wrapped at', formatTime(e.wrapped_at)],
          ['Last key check', formatTime(e.last_key_check_at)],
          e.last_key_check_error ? ['Last check error', e.last_key_check_error] : null,
        ])),
      h('section', { class: 'panel', 'aria-labelledby': 'sec-details' },
        h('h2', { id: 'sec-details' }, 'Details'),
        props([
          ['ID', h('code', {}, c.id)],
          ['Cloud provider', CLOUD_LABELS[c.cloud_provider] || c.cloud_provider],
          ['Region', c.region],
          ['Tier', c.tier],
          ['Durability', c.durability],
          ['Created', formatTime(c.created_at)],
          ['Updated', formatTime(c.updated_at)],
          ['Backups', h('a', { href: `#/clusters/${encodeURIComponent(c.id)}/backups` }, 'Backups of this cluster')],
          ['Audit Log', h('a', { href: `#/audit-log?cluster_id=${encodeURIComponent(c.id)}` }, 'Audit Log of this cluster')],
        ])));
    if (focusLabel !== null) refocus(body, c.id, focusLabel);
    if (TRANSITIONAL.has(c.state)) timer = setTimeout(() => load(), 2000);
  };
  await load();
}
