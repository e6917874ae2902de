// Projects: the list, and Create New Project (name and the CMEK choice) for those allowed.
import { errorMessage } from '../api.js';
import { field, formatTime, h, notice, pageHeader, table } from '../ui.js';

export async function render(root, ctx) {
  const can = ctx.user.can;
  const createButton = can.createProject
    ? h('button', { type: 'button', class: 'primary', 'aria-expanded': 'false', 'aria-controls': 'create-project' }, 'Create New Project')
    : null;
  const formSlot = h('div', { id: 'create-project' });
  root.append(pageHeader('Projects', createButton), formSlot);
  if (!can.createProject) {
    root.append(notice('info', h('p', {},
      'You cannot create projects: that needs the organization owner or the organization-level project_creator role. ',
      'Ask an organization owner to grant it: keyward user allow-project-create ', h('code', {}, ctx.user.id), '.')));
  }
  if (createButton) {
    createButton.addEventListener('click', () => {
      if (formSlot.firstChild) {
        formSlot.replaceChildren();
        createButton.setAttribute('aria-expanded', 'false');
        return;
      }
      createButton.setAttribute('aria-expanded', 'true');
      formSlot.replaceChildren(createForm(ctx, () => {
        formSlot.replaceChildren();
        createButton.setAttribute('aria-expanded', 'false');
        createButton.focus();
      }));
      formSlot.querySelector('input').focus();
    });
  }
  root.append(projectList(ctx));
}

function createForm(ctx, close) {
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '63', autocomplete: 'off', spellcheck: 'false' });
  const cmekAllowed = ctx.user.can.createCmekProject;
  const cmek = h('input', { type: 'checkbox', name: 'cmek', id: 'project-cmek', disabled: !cmekAllowed });
  const cmekWhy = h('p', { class: 'hint', id: 'project-cmek-hint' }, cmekAllowed
    ? 'Clusters of a CMEK project encrypt their data, and their backups, with your own key in Azure Key Vault or AWS KMS. CMEK is chosen now and can never be turned on or off later.'
    : 'Only organization owners can create CMEK-enabled projects; ask one to create it for you. CMEK cannot be enabled on an existing project, so choose before creating the clusters.');
  cmek.setAttribute('aria-describedby', cmekWhy.id);
  const error = h('div', { role: 'alert' });
  const confirm = h('button', { type: 'submit', class: 'primary' }, 'Confirm');
  const cancel = h('button', { type: 'button' }, 'Cancel');
  cancel.addEventListener('click', close);
  const form = h('form', { class: 'panel', 'aria-labelledby': 'create-project-title', novalidate: true },
    h('h2', { id: 'create-project-title' }, 'Create New Project'),
    field('Project name', name, '1-63 characters of a-z, 0-9 and -, not starting with -; unique in the organization.'),
    h('div', { class: 'field check' }, cmek, h('label', { for: 'project-cmek' }, 'Enable CMEK (customer-managed encryption key)')),
    cmekWhy,
    error,
    h('div', { class: 'form-actions' }, confirm, cancel));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.replaceChildren();
    if (!name.value.trim()) {
      error.replaceChildren(notice('error', 'Fill in a project name.'));
      name.focus();
      return;
    }
    confirm.disabled = true;
    const r = await ctx.api('POST', '/projects', { name: name.value.trim(), cmek_enabled: cmek.checked });
    confirm.disabled = false;
    if (r.status !== 201) {
      error.replaceChildren(notice('error', `Project not created: ${errorMessage(r)}`));
      name.focus();
      return;
    }
    ctx.notify(`Project ${r.body.name} created${r.body.cmek_enabled ? ' with CMEK' : ''}. Switch to it with the project switcher in the upper-left corner.`, 'success');
    await ctx.refreshProjects();
  });
  return form;
}

function projectList(ctx) {
  if (ctx.projects.length === 0) {
    return notice('info', h('p', {}, 'No projects yet.', ctx.user.can.createProject ? ' Click Create New Project to make the first one.' : ''));
  }
  const rows = ctx.projects.map((p) => {
    const current = ctx.project && ctx.project.id === p.id;
    const open = h('button', { type: 'button', class: 'link-button' }, p.name);
    open.setAttribute('aria-label', current ? `${p.name} (current project): open its clusters` : `Switch to project ${p.name}`);
    open.addEventListener('click', async () => {
      if (!current) await ctx.setProject(p.id);
      ctx.navigate('#/clusters');
    });
    return h('tr', { dataset: { projectId: p.id } },
      h('td', {}, open, current ? h('span', { class: 'muted' }, ' (current)') : null),
      h('td', {}, p.cmek_enabled ? h('span', { class: 'badge state-active' }, 'CMEK enabled') : h('span', { class: 'muted' }, 'Escrow key')),
      h('td', {}, h('code', {}, p.id)),
      h('td', {}, formatTime(p.created_at)));
  });
  return table(['Name', 'Encryption', 'ID', 'Created'], rows, 'Projects');
}
