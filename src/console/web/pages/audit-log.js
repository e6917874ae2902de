// Placeholder: helper C2 replaces this page (the Audit Log with its filters).
import { h, pageHeader } from '../ui.js';

export async function render(root, ctx) {
  root.append(pageHeader('Audit Log'),
    h('p', {}, ctx.project ? `Audit events of project ${ctx.project.name}.` : 'Choose a project first.'));
}
