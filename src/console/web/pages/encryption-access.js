// Placeholder: helper C2 replaces this page (the Create Encryption Key wizard).
import { h, pageHeader } from '../ui.js';

export async function render(root, ctx) {
  root.append(pageHeader('Encryption Access'),
    h('p', {}, ctx.project ? `Encryption keys of project ${ctx.project.name}.` : 'Choose a project first.'));
}
