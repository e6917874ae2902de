// The console's shell: sign-in, the organization/project switcher in the upper-left corner, the
// left navigation (the reference's words: Projects, Clusters, Project Settings > Encryption
// Access, Audit Log), the hash router and the live regions for messages.
//
// Page modules (pages/<name>.js) export `async function render(root, ctx)`; ctx is:
//   api(method, path, body?) → Promise<{status, body, headers}>  (path below /api/v1; never throws;
//                               failures carry the API's {"error":{code,message}} body)
//   project   the current project object, or null      projects  every project the user sees
//   user      { id, name, org_id, org_role, project_creator, project_role, can: {...} }
//   navigate(hash)  notify(message, kind='info'|'success'|'error')
//   copyButton(text, label='Copy', describes='') → HTMLElement
//   params    route parameters ({ id } for #/clusters/<id> and #/clusters/<id>/backups)
//   signal    an AbortSignal, aborted when the user leaves the page (stop polling with it)
//   refresh() re-renders the page; refreshProjects() reloads the switcher; setProject(id)
import { api, clearSession, errorMessage, listAll, onUnauthorized, saveToken, token } from './api.js';
import { copyButton, field, h } from './ui.js';

const PROJECT_KEY = 'keyward.project';

// Hash routes → page modules. A route's :id becomes ctx.params.id.
const ROUTES = [
  { pattern: /^#\/projects$/, page: 'projects', nav: 'projects' },
  { pattern: /^#\/clusters$/, page: 'clusters', nav: 'clusters' },
  { pattern: /^#\/clusters\/([A-Za-z0-9_.-]+)$/, page: 'cluster-detail', nav: 'clusters', keys: ['id'] },
  { pattern: /^#\/clusters\/([A-Za-z0-9_.-]+)\/backups$/, page: 'backups', nav: 'clusters', keys: ['id'] },
  { pattern: /^#\/project-settings\/encryption-access$/, page: 'encryption-access', nav: 'encryption-access' },
  { pattern: /^#\/audit-log$/, page: 'audit-log', nav: 'audit-log' },
];

const NAV = [
  { id: 'projects', label: 'Projects', hash: '#/projects' },
  { id: 'clusters', label: 'Clusters', hash: '#/clusters' },
  { group: 'Project Settings', items: [{ id: 'encryption-access', label: 'Encryption Access', hash: '#/project-settings/encryption-access' }] },
  { id: 'audit-log', label: 'Audit Log', hash: '#/audit-log' },
];

const state = {
  user: null,
  projects: [],
  project: null,
  pageAbort: null,
  renderSeq: 0,
};

const appRoot = () => document.getElementById('app');

// ---- messages -------------------------------------------------------------------------------

// The messages of the shell: a live region (index.html's #toasts) that the shell places in the
// page's flow under the top bar, so a message pushes the page down instead of floating over it
// (a floating box covered the tables' right column, where the action buttons are).
const messageBox = document.getElementById('toasts');

// Info and success messages go after a while; errors stay until dismissed and are announced
// assertively (role=alert). Every message can be dismissed.
export function notify(message, kind = 'info') {
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss message' }, '×');
  const toast = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null }, h('span', {}, message), close);
  close.addEventListener('click', () => {
    // Focus was on the button that is going away: keep it in the page, not on <body>.
    const hadFocus = toast.contains(document.activeElement);
    toast.remove();
    if (hadFocus) document.getElementById('main')?.focus();
  });
  // The same message again (a repeated click) replaces the older copy rather than stacking.
  for (const old of [...messageBox.children]) if (old.firstElementChild?.textContent === message) old.remove();
  messageBox.append(toast);
  // At most three at once: a burst of actions must not push the page far down.
  while (messageBox.children.length > 3) messageBox.firstElementChild.remove();
  if (kind !== 'error') setTimeout(() => toast.remove(), 8000);
}

// ---- sign-in and sign-out -------------------------------------------------------------------

function showSignIn(message = '') {
  if (state.pageAbort) state.pageAbort.abort();
  state.user = null;
  document.title = 'Sign in · keyward console';
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true });
  const error = h('p', { class: 'form-error', role: 'alert' }, message);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'signin-form', novalidate: true },
    field('API token', input, h('p', { class: 'hint' },
      'The organization owner\'s token is in the server\'s data directory (owner.token). Project members get theirs when they are added (keyward project add-member); anyone signed in can make a shorter-lived one with keyward token create. The token is kept in this browser tab only (sessionStorage) and sent as a bearer header.')),
    error, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) {
      error.textContent = 'Enter an API token to sign in.';
      input.focus();
      return;
    }
    submit.disabled = true;
    saveToken(t);
    const ok = await loadSession();
    submit.disabled = false;
    if (!ok.ok) {
      clearSession();
      error.textContent = ok.message;
      input.focus();
      return;
    }
    input.value = '';
    if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/projects';
    renderShell();
  });
  // The messages were the last user's: gone, and the box moves out of the shell it sat in.
  messageBox.replaceChildren();
  appRoot().after(messageBox);
  appRoot().replaceChildren(h('main', { id: 'main', class: 'signin' },
    h('div', { class: 'signin-card' }, h('h1', {}, 'Sign in to keyward'), form)));
  input.focus();
}

export function signOut(message = '') {
  clearSession();
  state.projects = [];
  state.project = null;
  showSignIn(message);
}

onUnauthorized((msg) => {
  if (!state.user) return;  // the sign-in form reports its own failure
  signOut(`You were signed out: ${msg}. Sign in again with a valid token.`);
});

// Who the token belongs to and what they see. { ok, message }.
async function loadSession() {
  const me = await api('GET', '/users/me');
  if (me.status === 401) return { ok: false, message: `The server refused this token: ${errorMessage(me)}. Check that you copied all of it, or make a new one.` };
  if (me.status !== 200) return { ok: false, message: `Cannot sign in: ${errorMessage(me)}` };
  const roles = me.body.org_roles || [];
  state.user = {
    id: me.body.id,
    name: me.body.name,
    org_id: me.body.org_id,
    org_role: roles.includes('owner') ? 'owner' : 'member',
    project_creator: roles.includes('project_creator'),
    project_role: null,
  };
  const loaded = await loadProjects();
  if (!loaded.ok) return loaded;
  return { ok: true };
}

async function loadProjects() {
  const r = await listAll('/projects');
  if (r.status !== 200) return { ok: false, message: `Cannot list projects: ${errorMessage(r)}` };
  state.projects = r.items;
  const wanted = sessionStorage.getItem(PROJECT_KEY);
  state.project = state.projects.find((p) => p.id === wanted) || state.projects[0] || null;
  await loadProjectRole();
  return { ok: true };
}

// The user's role in the current project decides which buttons the pages offer (the server
// enforces the same rules; hiding a button only spares the user a 403).
async function loadProjectRole() {
  const u = state.user;
  u.project_role = null;
  if (state.project) {
    sessionStorage.setItem(PROJECT_KEY, state.project.id);
    if (u.org_role === 'owner') {
      u.project_role = 'project_owner';  // organization owners may do everything
    } else {
      const m = await listAll(`/projects/${encodeURIComponent(state.project.id)}/members`);
      const mine = (m.items || []).find((x) => x.user_id === u.id);
      u.project_role = mine ? mine.role : 'project_viewer';
    }
  }
  const rank = { project_viewer: 1, project_member: 2, project_owner: 3 }[u.project_role] || 0;
  u.can = {
    createProject: u.org_role === 'owner' || u.project_creator,
    createCmekProject: u.org_role === 'owner',
    manageClusters: rank >= 2,  // create, pause, resume, delete, reset password, backups
    manageKeys: rank >= 3,      // encryption keys and members
    view: rank >= 1,
  };
}

// ---- the shell ------------------------------------------------------------------------------

function projectLabel(p) {
  return `${p.name}${p.cmek_enabled ? ' (CMEK)' : ''}`;
}

function renderShell() {
  const u = state.user;
  document.title = 'keyward console';
  const orgSelect = h('select', { id: 'org-switcher', class: 'switcher-select' },
    h('option', { value: u.org_id }, `Organization ${u.org_id}`));
  const projectSelect = h('select', { id: 'project-switcher', class: 'switcher-select', disabled: state.projects.length === 0 },
    state.projects.length === 0 ? h('option', { value: '' }, 'No projects yet')
      : state.projects.map((p) => h('option', { value: p.id, selected: state.project && p.id === state.project.id }, projectLabel(p))));
  projectSelect.addEventListener('change', () => setProject(projectSelect.value));

  const navToggle = h('button', { type: 'button', class: 'nav-toggle', 'aria-expanded': 'false', 'aria-controls': 'nav' }, 'Menu');
  const nav = h('nav', { id: 'nav', class: 'nav', 'aria-label': 'Main' }, h('ul', {}, NAV.map((item) => (item.group
    ? h('li', { class: 'nav-group' }, h('span', { class: 'nav-group-label', id: 'nav-group-settings' }, item.group),
      h('ul', { 'aria-labelledby': 'nav-group-settings' }, item.items.map((i) => h('li', {}, h('a', { href: i.hash, dataset: { nav: i.id } }, i.label)))))
    : h('li', {}, h('a', { href: item.hash, dataset: { nav: item.id } }, item.label))))));
  navToggle.addEventListener('click', () => {
    const open = navToggle.getAttribute('aria-expanded') !== 'true';
    navToggle.setAttribute('aria-expanded', String(open));
    nav.classList.toggle('open', open);
  });
  nav.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && nav.classList.contains('open')) {
      navToggle.setAttribute('aria-expanded', 'false');
      nav.classList.remove('open');
      navToggle.focus();
    }
  });
  nav.addEventListener('click', (e) => {
    if (e.target.closest('a')) {
      navToggle.setAttribute('aria-expanded', 'false');
      nav.classList.remove('open');
    }
  });
  const signOutButton = h('button', { type: 'button', id: 'sign-out', class: 'link-button' }, 'Sign out');
  signOutButton.addEventListener('click', () => signOut('You signed out. The token was removed from this tab.'));
  const skip = h('a', { class: 'skip-link', href: '#main' }, 'Skip to content');
  skip.addEventListener('click', (e) => {
    e.preventDefault();
    document.getElementById('main').focus();
  });

  const header = h('header', { class: 'topbar' },
    navToggle,
    h('div', { class: 'switcher' },
      h('label', { for: 'org-switcher', class: 'visually-hidden' }, 'Organization'), orgSelect,
      h('span', { class: 'switcher-sep', 'aria-hidden': 'true' }, '/'),
      h('label', { for: 'project-switcher', class: 'visually-hidden' }, 'Project'), projectSelect),
    h('div', { class: 'who' },
      h('span', { class: 'who-name' }, u.name || u.id, ' · ', roleLabel(u)),
      signOutButton));
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  appRoot().replaceChildren(skip, header, messageBox, h('div', { class: 'body' }, nav, main));
  route(false);
}

function roleLabel(u) {
  if (u.org_role === 'owner') return 'organization owner';
  return (u.project_role || 'no project role').replace('project_', 'project ');
}

async function setProject(id) {
  const p = state.projects.find((x) => x.id === id);
  if (!p) return;
  state.project = p;
  await loadProjectRole();
  notify(`Switched to project ${p.name}`, 'info');
  renderShell();
}

async function refreshProjects() {
  const r = await loadProjects();
  if (!r.ok) notify(r.message, 'error');
  renderShell();
}

// ---- the router -----------------------------------------------------------------------------

// '#/audit-log?cluster_id=c-1' → the audit-log route with params { cluster_id: 'c-1' }: the part
// after '?' carries a page's filters, so a link can open a page already filtered.
function matchRoute(hash) {
  const q = hash.indexOf('?');
  const pathPart = q < 0 ? hash : hash.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  for (const r of ROUTES) {
    const m = r.pattern.exec(pathPart);
    if (m) {
      const params = {};
      for (const [k, v] of query) params[k] = v;
      (r.keys || []).forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
      return { ...r, params };
    }
  }
  return null;
}

async function route(moveFocus = true) {
  if (!state.user) return;
  const main = document.getElementById('main');
  if (!main) return;
  let hash = location.hash;
  if (!hash || hash === '#' || hash === '#/') {
    history.replaceState(null, '', '#/projects');
    hash = '#/projects';
  }
  const r = matchRoute(hash);
  for (const a of document.querySelectorAll('#nav a')) {
    if (r && a.dataset.nav === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (state.pageAbort) state.pageAbort.abort();
  state.pageAbort = new AbortController();
  const seq = ++state.renderSeq;
  if (!r) {
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Page not found'),
      h('p', {}, `The console has no page ${hash}. `, h('a', { href: '#/projects' }, 'Go to Projects'), '.'));
    return;
  }
  const root = h('div', { class: 'page', dataset: { page: r.page } });
  main.replaceChildren(root);
  const ctx = {
    api,
    project: state.project,
    projects: state.projects,
    user: state.user,
    navigate: (to) => { location.hash = to; },
    notify,
    copyButton: (text, label = 'Copy', describes = '') => copyButton(text, label, notify, describes),
    params: r.params,
    signal: state.pageAbort.signal,
    refresh: () => route(false),
    refreshProjects,
    setProject,
  };
  try {
    const mod = await import(`./pages/${r.page}.js`);
    if (seq !== state.renderSeq) return;
    await mod.render(root, ctx);
  } catch (e) {
    if (seq !== state.renderSeq) return;
    root.replaceChildren(h('h1', { tabindex: '-1' }, 'Something went wrong'),
      h('p', { role: 'alert' }, `This page failed to load (${e.message}). Reload the page; if it persists, the server log has details.`));
  }
  if (seq !== state.renderSeq) return;
  const title = root.querySelector('h1');
  if (title) document.title = `${title.textContent} · keyward console`;
  if (moveFocus && title) {
    if (!title.hasAttribute('tabindex')) title.setAttribute('tabindex', '-1');
    title.focus();
  }
}

window.addEventListener('hashchange', () => route(true));

async function start() {
  if (!token()) {
    showSignIn();
    return;
  }
  const ok = await loadSession();
  if (!ok.ok) {
    clearSession();
    showSignIn(ok.message);
    return;
  }
  renderShell();
}

start();
