// Placeholder: helper C2 replaces this page (a cluster's backups: list, create, restore).
import { h, pageHeader } from '../ui.js';

export async function render(root, ctx) {
  root.append(pageHeader('Backups'), h('p', {}, `Backups of cluster ${ctx.params.id}.`),
    h('p', {}, h('a', { href: `#/clusters/${encodeURIComponent(ctx.params.id)}` }, 'Back to the cluster')));
}
