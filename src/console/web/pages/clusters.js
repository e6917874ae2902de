// Clusters of the current project: the list (state, key version, endpoint, actions) and the
// create form, where the encryption key is matched to the chosen cloud and region, or the
// reference's tip points to Encryption Access when the region has none.
import { errorMessage, listAll } from '../api.js';
import {
  actionError, CLOUD_LABELS, clusterActions, KEY_PROVIDER_FOR_CLOUD, keyLabel, passwordPanel,
  PROVIDER_LABELS, refocus, stateExplanation, TRANSITIONAL,
} from '../clusters-common.js';
import { codeWithCopy, field, h, notice, pageHeader, select, stateBadge, table } from '../ui.js';

let regionsCache = null;

// The regions the server accepts, per cloud (served by keyward from its own list).
async function regions() {
  if (!regionsCache) {
    const r = await fetch('/console/regions.json', { cache: 'no-store' });
    regionsCache = r.ok ? await r.json() : { aws: ['us-east-1'], azure: ['eastus'], gcp: ['us-central1'] };
  }
  return regionsCache;
}

export async function render(root, ctx) {
  if (!ctx.project) {
    root.append(pageHeader('Clusters'), notice('info', h('p', {}, 'No project is selected. ', h('a', { href: '#/projects' }, 'Create or choose a project'), ' first.')));
    return;
  }
  const can = ctx.user.can;
  const createButton = can.manageClusters
    ? h('button', { type: 'button', class: 'primary', 'aria-expanded': 'false', 'aria-controls': 'create-cluster' }, 'Create Cluster')
    : null;
  const formSlot = h('div', { id: 'create-cluster' });
  const createdSlot = h('div', {});
  const errorSlot = h('div', { class: 'action-errors' });
  const listSlot = h('div', { 'aria-busy': 'true' }, h('p', {}, 'Loading clusters…'));
  const showDeleted = h('input', { type: 'checkbox', id: 'show-deleted' });
  root.append(pageHeader('Clusters', createButton),
    h('p', { class: 'muted' }, `Project ${ctx.project.name}`, ctx.project.cmek_enabled ? ' · CMEK enabled: every cluster uses your encryption key for its cloud and region' : ' · encrypted under the service\'s escrow key'));
  if (!can.manageClusters) {
    root.append(notice('info', h('p', {}, `You have the ${(ctx.user.project_role || 'project_viewer')} role in this project: you can see its clusters, but creating, pausing, resuming and deleting them needs project_member or above.`)));
  }
  root.append(formSlot, createdSlot, errorSlot,
    h('div', { class: 'field check' }, showDeleted, h('label', { for: 'show-deleted' }, 'Show deleted clusters')),
    listSlot);

  let timer = null;
  const load = async (focus = null) => {
    clearTimeout(timer);
    const r = await listAll(`/projects/${encodeURIComponent(ctx.project.id)}/clusters`);
    if (ctx.signal.aborted) return;
    listSlot.removeAttribute('aria-busy');
    if (r.status !== 200) {
      listSlot.replaceChildren(notice('error', h('p', {}, `Cannot list clusters: ${errorMessage(r)}`)));
      return;
    }
    const clusters = r.items.filter((c) => showDeleted.checked || c.state !== 'deleted');
    listSlot.replaceChildren(clusterTable(clusters, ctx, (result) => {
      errorSlot.replaceChildren(result.ok ? '' : actionError(result.message));
      load({ id: result.cluster?.id, label: result.from });
    }));
    if (focus) refocus(listSlot, focus.id, focus.label);
    // Creating and deleting finish in the background: look again until they settle.
    if (clusters.some((c) => TRANSITIONAL.has(c.state))) timer = setTimeout(() => load(), 2000);
  };
  ctx.signal.addEventListener('abort', () => clearTimeout(timer));
  showDeleted.addEventListener('change', () => load());

  if (createButton) {
    createButton.addEventListener('click', async () => {
      if (formSlot.firstChild) {
        formSlot.replaceChildren();
        createButton.setAttribute('aria-expanded', 'false');
        return;
      }
      createButton.setAttribute('aria-expanded', 'true');
      const form = await createForm(ctx, {
        close: () => {
          formSlot.replaceChildren();
          createButton.setAttribute('aria-expanded', 'false');
          createButton.focus();
        },
        created: (c) => {
          formSlot.replaceChildren();
          createButton.setAttribute('aria-expanded', 'false');
          const panel = passwordPanel(c, ctx);
          createdSlot.replaceChildren(panel);
          panel.querySelector('h2').focus();
          load();
        },
      });
      formSlot.replaceChildren(form);
      form.querySelector('input').focus();
    });
  }
  await load();
}

function clusterTable(clusters, ctx, after) {
  if (clusters.length === 0) {
    return notice('info', h('p', {}, 'No clusters in this project yet.', ctx.user.can.manageClusters ? ' Click Create Cluster to make one.' : ''));
  }
  const rows = clusters.map((c) => h('tr', { dataset: { clusterId: c.id, clusterName: c.name } },
    h('td', {}, h('a', { href: `#/clusters/${encodeURIComponent(c.id)}` }, c.name)),
    h('td', { class: 'cluster-state' }, stateBadge(c.state), stateExplanation(c)),
    h('td', {}, `${CLOUD_LABELS[c.cloud_provider] || c.cloud_provider} · ${c.region}`, h('br'), h('span', { class: 'muted' }, c.tier)),
    h('td', {}, keyLabel(c), c.encryption?.key_version ? h('div', { class: 'muted' }, `version ${c.encryption.key_version}`) : null),
    h('td', {}, c.endpoint && !['deleted', 'deleting'].includes(c.state) ? codeWithCopy(c.endpoint, 'Copy', ctx.notify, `endpoint of ${c.name}`) : '—'),
    h('td', {}, clusterActions(c, ctx, after))));
  return table(['Name', 'State', 'Cloud and region', 'Encryption key', 'Endpoint', 'Actions'], rows, 'Clusters');
}

async function createForm(ctx, { close, created }) {
  const cmek = ctx.project.cmek_enabled;
  const allRegions = await regions();
  let keys = [];
  if (cmek) {
    const k = await listAll(`/projects/${encodeURIComponent(ctx.project.id)}/encryption-keys`);
    keys = k.items || [];
  }
  // In a CMEK project, start where a key is ready (the reference's order: key first, then cluster).
  const ready = keys.find((k) => k.state === 'active');
  const startCloud = ready ? (ready.provider === 'aws-kms' ? 'aws' : 'azure') : 'azure';
  const clouds = cmek ? ['azure', 'aws'] : ['azure', 'aws', 'gcp'];
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '63', autocomplete: 'off', spellcheck: 'false' });
  const cloud = select(clouds.map((c) => ({ value: c, label: CLOUD_LABELS[c], selected: c === startCloud })), { name: 'cloud_provider' });
  const region = h('select', { name: 'region' });
  const tier = select(cmek ? [{ value: 'dedicated', label: 'Dedicated' }]
    : [{ value: 'dedicated', label: 'Dedicated' }, { value: 'starter', label: 'Starter' }], { name: 'tier' });
  const keyBox = h('div', { class: 'key-match', 'aria-live': 'polite' });
  const error = h('div', { role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create Cluster');
  const cancel = h('button', { type: 'button' }, 'Cancel');
  cancel.addEventListener('click', close);

  const fillRegions = (preferred) => {
    const list = allRegions[cloud.value] || [];
    region.replaceChildren(...list.map((r) => h('option', { value: r, selected: r === preferred }, r)));
  };
  const matchKey = () => {
    submit.disabled = false;
    if (!cmek) {
      keyBox.replaceChildren(notice('info', h('p', {}, h('strong', {}, 'Encryption key: '), 'the service\'s escrow key (this project does not use CMEK).')));
      return;
    }
    const provider = KEY_PROVIDER_FOR_CLOUD[cloud.value];
    const cloudName = CLOUD_LABELS[cloud.value];
    const key = keys.find((k) => k.provider === provider && k.region === region.value);
    const link = h('a', { href: '#/project-settings/encryption-access' }, 'Project Settings > Encryption Access');
    if (!key) {
      submit.disabled = true;
      keyBox.replaceChildren(h('div', { class: 'notice notice-tip', dataset: { tip: 'no-key' } },
        h('p', {}, h('strong', {}, 'Tip: '), `No encryption key is configured for ${cloudName} in ${region.value} in this project. In a CMEK-enabled project you can only create clusters in regions where you have configured an encryption key for the chosen cloud provider.`),
        h('p', {}, 'Create one in ', link, ' (Create Encryption Key, then Test Encryption Key and Create), then come back here.')));
      return;
    }
    if (key.state !== 'active') {
      submit.disabled = true;
      keyBox.replaceChildren(notice('tip',
        h('p', {}, h('strong', {}, 'Encryption key not ready: '), `${key.key_name} (${PROVIDER_LABELS[key.provider]}, ${key.region}) is ${key.state}${key.status_message ? `: ${key.status_message}` : ''}.`),
        h('p', {}, 'Finish its setup in ', link, ' and click Test Encryption Key and Create.')));
      return;
    }
    keyBox.replaceChildren(notice('success', h('p', {}, h('strong', {}, 'Encryption key (matched): '),
      `${key.key_name} — ${PROVIDER_LABELS[key.provider]}, ${key.region}, active${key.current_version ? `, version ${key.current_version}` : ''}`)));
  };
  cloud.addEventListener('change', () => { fillRegions(); matchKey(); });
  region.addEventListener('change', matchKey);
  fillRegions(ready ? ready.region : (startCloud === 'azure' ? 'eastus' : 'us-east-1'));
  matchKey();

  const form = h('form', { class: 'panel', 'aria-labelledby': 'create-cluster-title', novalidate: true },
    h('h2', { id: 'create-cluster-title' }, 'Create Cluster'),
    field('Cluster name', name, '1-63 characters of a-z, 0-9 and -, not starting with -.'),
    field('Cloud provider', cloud, cmek ? 'CMEK-enabled projects host clusters on AWS and Azure.' : null),
    field('Region', region),
    field('Tier', tier, cmek ? 'CMEK-enabled projects create Dedicated clusters.' : null),
    keyBox, error,
    h('div', { class: 'form-actions' }, submit, cancel));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.replaceChildren();
    if (!name.value.trim()) {
      error.replaceChildren(notice('error', 'Fill in a cluster name.'));
      name.focus();
      return;
    }
    submit.disabled = true;
    const r = await ctx.api('POST', `/projects/${encodeURIComponent(ctx.project.id)}/clusters`,
      { name: name.value.trim(), cloud_provider: cloud.value, region: region.value, tier: tier.value });
    submit.disabled = false;
    if (r.status !== 201) {
      error.replaceChildren(notice('error', `Cluster not created: ${errorMessage(r)}`));
      return;
    }
    ctx.notify(`Cluster ${r.body.name} created`, 'success');
    created(r.body);
  });
  return form;
}
