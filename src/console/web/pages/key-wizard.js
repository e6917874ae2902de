// The Create Encryption Key wizard, step by step as the reference's Step 2 (Azure portal path and
// Azure Resource Manager path; for AWS KMS the key policy and the key ARN). The key record is
// created (state pending) when the full key name is asked for, because keyward's unique suffix is
// chosen by the server; Test Encryption Key and Create tests it, which makes it active. Each
// check of the test is shown next to the step it belongs to.
import { h, clear, call, copyable, copyButton, showError } from './kit.js';

let services = null; // GET /key-management-services, fetched once per page load

// Which wizard step a check of POST …:test belongs to. `describe` fails for two reasons: the key
// is missing (the key step) or keyward may not read it (the role / key policy step).
export function stepForCheck(provider, check) {
  const denied = /Step 2\.9|permission|denied|not authori[sz]ed|role|policy/i.test(check.message || '');
  if (provider === 'aws-kms') {
    switch (check.step) {
      case 'connect': return 'kms';
      case 'describe': return !check.ok && denied ? 'policy' : 'arn';
      case 'wrap': case 'unwrap': return 'policy';
      default: return 'arn';
    }
  }
  switch (check.step) {
    case 'connect': return 'kms';
    case 'describe': return !check.ok && denied ? 'app-role' : 'key';
    case 'purge_protection': case 'region': return 'vault';
    case 'wrap': case 'unwrap': return 'app-role';
    default: return 'key';
  }
}

export async function openWizard(host, ctx, { project, keys, existing, onDone, onClose }) {
  const base = `/projects/${encodeURIComponent(project.id)}/encryption-keys`;
  clear(host, h('p', { role: 'status' }, 'Loading the key management services…'));
  try {
    services = services || (await call(ctx, 'GET', '/key-management-services')).items;
  } catch (e) {
    showError(ctx, host, e, 'Could not load the key management services: ');
    return;
  }
  // What the wizard holds: the record once created, and what was entered for it.
  const st = {
    provider: existing?.provider || services[0].provider,
    region: existing?.region || '',
    key: existing || null,
    createdHere: false,
    busy: false,
  };
  if (existing) {
    try { st.key = await call(ctx, 'GET', `${base}/${encodeURIComponent(existing.id)}`); } catch (e) { showError(ctx, host, e); return; }
  }
  const service = () => services.find((s) => s.provider === st.provider);
  const taken = (provider, region) => keys.some((k) => k.provider === provider && k.region === region && k.id !== st.key?.id);

  const title = h('h2', { id: 'kw-wizard-title', tabindex: '-1' }, existing ? `Continue setup: ${existing.key_name}` : 'Create Encryption Key');
  const form = h('form', { class: 'kw-wizard', 'aria-labelledby': 'kw-wizard-title', novalidate: true });
  form.addEventListener('submit', (e) => e.preventDefault());
  const steps = h('ol', { class: 'kw-steps' });
  const result = h('div', { class: 'kw-result', role: 'status', 'aria-live': 'polite' });
  const testBtn = h('button', { type: 'button', class: 'primary', id: 'kw-test-and-create' }, 'Test Encryption Key and Create');
  const cancelBtn = h('button', { type: 'button' }, existing ? 'Close' : 'Cancel');
  form.append(steps, h('div', { class: 'kw-toolbar' }, testBtn, cancelBtn), result);
  clear(host, h('section', { class: 'panel kw-wizard-panel', 'aria-labelledby': 'kw-wizard-title' }, title, form));
  title.focus();

  const checkSlots = {};
  const step = (id, heading, ...body) => {
    checkSlots[id] = h('ul', { class: 'kw-checks', 'data-checks-for': id, 'aria-label': `Test results for: ${heading}` });
    checkSlots[id].hidden = true;
    return h('li', { class: 'kw-step', id: `kw-step-${id}`, 'data-step': id },
      h('h3', {}, heading), ...body, checkSlots[id]);
  };

  // Step: Key Management Service and region (fixed once the record exists).
  const kmsStep = () => {
    const locked = Boolean(st.key);
    const radios = services.map((s) => h('label', { class: 'kw-radio' },
      h('input', { type: 'radio', name: 'kw-provider', value: s.provider, checked: s.provider === st.provider, disabled: locked,
        onchange: () => { st.provider = s.provider; st.region = ''; draw(); } }),
      ` ${s.name}`));
    const sel = h('select', { id: 'kw-region', required: true, disabled: locked,
      onchange: (e) => { st.region = e.target.value; draw(); } },
    h('option', { value: '' }, 'Choose a region'),
    service().regions.map((r) => h('option', { value: r, selected: r === st.region, disabled: taken(st.provider, r) },
      taken(st.provider, r) ? `${r} (has a key)` : r)));
    return step('kms', 'Key Management Service and region',
      h('fieldset', {}, h('legend', {}, 'Key Management Service'), radios),
      h('p', {}, h('label', { for: 'kw-region' }, 'Region where the encryption key will be used'), ' ', sel),
      locked ? h('p', { class: 'hint' }, 'The provider and region of a key record never change: delete it and create a new one instead.') : null);
  };

  const identityWarning = (id) => (id?.placeholder && id.warning ? h('p', { class: 'notice notice-tip', role: 'note' }, id.warning) : null);

  const azureSteps = () => {
    const s = service();
    const id = s.service_identity;
    const setup = st.key?.setup || {};
    const cfg = st.key?.config || {};
    const cmd = (re) => (setup.az_commands || []).find((c) => re.test(c.command))?.command;
    const out = [];
    out.push(step('sp', 'Create Service Principal',
      h('p', {}, 'If a Service Principal for keyward\'s enterprise application does not already exist in your tenant, create one. ' +
        'You need its Microsoft Entra Application Name and ID here and in later steps.'),
      identityWarning(id),
      h('dl', { class: 'kw-facts' },
        h('dt', {}, 'Microsoft Entra Application Name'), h('dd', { id: 'kw-app-name' }, h('code', {}, id.microsoft_entra_application_name), ' ', copyButton(ctx, id.microsoft_entra_application_name, 'Copy', 'Microsoft Entra Application Name')),
        h('dt', {}, 'Microsoft Entra Application ID'), h('dd', { id: 'kw-app-id' }, h('code', {}, id.microsoft_entra_application_id), ' ', copyButton(ctx, id.microsoft_entra_application_id, 'Copy', 'Microsoft Entra Application ID'))),
      h('p', {}, 'Run this command (Create Service Principal):'),
      copyable(ctx, s.create_service_principal_command, 'Copy', 'az ad sp create command')));
    out.push(step('vault', 'Create a Key Vault',
      h('p', {}, 'Create a Key Vault in your Azure account, or select an existing one. Ensure that:'),
      h('ul', {}, h('li', {}, 'Purge protection is enabled.'),
        h('li', {}, `The region matches your cluster's region${st.region ? ` (${st.region})` : ''}.`)),
      cmd(/az keyvault create/) ? copyable(ctx, cmd(/az keyvault create/), 'Copy', 'az keyvault create command') : null));
    const vault = h('input', { id: 'kw-vault-name', name: 'key_vault_name', autocomplete: 'off', required: true, value: cfg.key_vault_name || '' });
    const prefix = h('input', { id: 'kw-key-prefix', name: 'key_name_prefix', autocomplete: 'off', required: true, value: cfg.key_name_prefix || '', 'aria-describedby': 'kw-prefix-hint' });
    const keyOut = h('div', { class: 'kw-keyname', 'aria-live': 'polite' });
    if (st.key) {
      keyOut.append(h('p', {}, 'Full key name: ', h('code', { id: 'kw-full-key-name' }, st.key.key_name), ' ', copyButton(ctx, st.key.key_name, 'Copy', 'full key name')),
        h('p', {}, 'Create the encryption key under this full name in the Azure portal (RSA 3072, permitted operations Wrap Key and Unwrap Key), or run:'),
        cmd(/az keyvault key create/) ? copyable(ctx, cmd(/az keyvault key create/), 'Copy', 'az keyvault key create command') : null);
    }
    const nameBtn = h('button', { type: 'button', id: 'kw-get-key-name' }, st.key ? 'Update Full Key Name' : 'Get Full Key Name');
    nameBtn.addEventListener('click', async () => { await saveAzure(vault.value.trim(), prefix.value.trim(), keyOut); });
    out.push(step('key', 'Key Vault name and Key name',
      h('p', {}, 'Enter the Key Vault name and Key name. keyward adds a unique suffix to the key name for enhanced security: copy the full key name and create the encryption key in the Azure portal.'),
      h('p', { class: 'kw-field' }, h('label', { for: 'kw-vault-name' }, 'Key Vault name'), vault),
      h('p', { class: 'kw-field' }, h('label', { for: 'kw-key-prefix' }, 'Key name'), prefix,
        h('span', { id: 'kw-prefix-hint', class: 'hint' }, 'The key name prefix; keyward adds the suffix.')),
      nameBtn, keyOut));
    out.push(step('officer', 'Assign the Key Vault Crypto Officer role to your current user',
      h('ol', { class: 'kw-substeps' },
        h('li', {}, 'In the Azure portal, navigate to your Key Vault.'),
        h('li', {}, 'Click Access control (IAM), and then click Add > Add role assignment.'),
        h('li', {}, 'Search for and select the Key Vault Crypto Officer role, then click Next.'),
        h('li', {}, 'On the Members tab, set Assign access to as User, group, or service principal.'),
        h('li', {}, 'Click + Select members, search for and select your current user as the member. Then, click Select.'),
        h('li', {}, 'Review the settings and click Review + assign.')),
      cmd(/Key Vault Crypto Officer/) ? copyable(ctx, cmd(/Key Vault Crypto Officer/), 'Copy', 'Crypto Officer role assignment command') : null));
    out.push(step('app-role', 'Assign the Key Vault Crypto Service Encryption User role to keyward\'s enterprise application',
      h('ol', { class: 'kw-substeps' },
        h('li', {}, 'In your Key Vault, go to the encryption key object you created', st.key ? ` (${st.key.key_name})` : '', '.'),
        h('li', {}, 'Click Add > Add role assignment.'),
        h('li', {}, 'Search for and select the Key Vault Crypto Service Encryption User role, then click Next.'),
        h('li', {}, 'On the Members tab, set Assign access to as User, group, or service principal.'),
        h('li', {}, `Click + Select members, enter the enterprise application name ${id.microsoft_entra_application_name}, and select it as the member. Then, click Select.`),
        h('li', {}, 'Review the configuration and click Review + assign.')),
      cmd(/Crypto Service Encryption User/) ? copyable(ctx, cmd(/Crypto Service Encryption User/), 'Copy', 'Crypto Service Encryption User role assignment command') : null));
    out.push(armStep(s, setup));
    return out;
  };

  // The reference's second path: deploy the ARM template instead of the portal steps above.
  const armStep = (s, setup) => {
    const body = [h('p', {}, 'Instead of the portal steps above, you can deploy keyward\'s template with Azure Resource Manager: it creates the Key Vault with purge protection, the key under its full name and both role assignments. Select your Subscription and Resource Group, then fill in the Instance Details: Region, Key Vault Name, Key Name (the full key name) and Enterprise App Service Principal ID, which this command prints:'),
      copyable(ctx, s.service_principal_id_command, 'Copy', 'az ad sp show command')];
    if (setup.arm_template) {
      const name = `keyward-cmek-${st.key.key_name}`;
      const params = { $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#', contentVersion: '1.0.0.0', parameters: setup.arm_parameters || {} };
      body.push(h('p', { class: 'kw-downloads' },
        download(`${name}.json`, setup.arm_template, 'Download ARM template', 'kw-arm-download'), ' ',
        download(`${name}.parameters.json`, params, 'Download parameters file', 'kw-arm-params-download')),
      h('p', {}, 'Or from a shell, after replacing the Service Principal ID placeholder in the parameters file:'),
      copyable(ctx, `az deployment group create --resource-group <resource-group> --template-file ${name}.json --parameters @${name}.parameters.json`, 'Copy', 'az deployment command'));
    } else {
      body.push(h('p', { class: 'hint' }, 'Enter the Key Vault name and Key name above first: the template needs the full key name.'));
    }
    return step('arm', 'Or use Azure Resource Manager', ...body);
  };

  // A Managed HSM key (created with the CLI's --managed-hsm-name): the server's own commands,
  // local RBAC instead of the vault's role assignments; the wizard tests it like any key.
  const hsmSteps = () => {
    const setup = st.key.setup || {};
    return [
      step('sp', 'Create Service Principal',
        h('p', {}, 'If a Service Principal for keyward\'s enterprise application does not already exist in your tenant, create one:'),
        copyable(ctx, service().create_service_principal_command, 'Copy', 'az ad sp create command')),
      step('hsm', `Managed HSM ${st.key.config.managed_hsm_name}`,
        h('p', {}, `Full key name: `, h('code', { id: 'kw-full-key-name' }, st.key.key_name), ' ', copyButton(ctx, st.key.key_name, 'Copy', 'full key name')),
        h('ol', { class: 'kw-substeps' }, (setup.az_commands || []).map((c) => h('li', {}, c.step,
          copyable(ctx, c.command, 'Copy', c.step))))),
    ];
  };

  const awsSteps = () => {
    const s = service();
    const id = s.service_identity;
    const arn = h('input', { id: 'kw-key-arn', name: 'key_arn', autocomplete: 'off', required: true, size: 60, value: st.key?.key_name || '',
      placeholder: `arn:aws:kms:${st.region || 'REGION'}:ACCOUNT:key/KEY-ID` });
    st.arnInput = arn;
    return [
      step('policy', 'Create the key and allow keyward to use it',
        h('p', {}, `In AWS KMS in region ${st.region || '(the region above)'}, create a symmetric encryption key (KeySpec SYMMETRIC_DEFAULT, KeyUsage ENCRYPT_DECRYPT), or use an existing one, and add this statement to its key policy so that keyward's principal can use it:`),
        identityWarning(id),
        h('dl', { class: 'kw-facts' }, h('dt', {}, 'keyward\'s AWS principal'), h('dd', { id: 'kw-aws-principal' }, h('code', {}, id.aws_principal_arn), ' ', copyButton(ctx, id.aws_principal_arn, 'Copy', 'AWS principal ARN'))),
        copyable(ctx, JSON.stringify(s.key_policy, null, 2), 'Copy', 'key policy')),
      step('arn', 'Key ARN',
        h('p', { class: 'kw-field' }, h('label', { for: 'kw-key-arn' }, 'Key ARN'), arn),
        h('p', { class: 'hint' }, 'The ARN of the key, in the region above.')),
    ];
  };

  // Redrawing the steps replaces their controls: the control that had focus (the region list a
  // keyboard user is arrowing through, a provider radio) gets it back, not <body>.
  const focusKey = (el) => (el.id ? `#${el.id}` : el.name && el.type === 'radio' ? `input[name="${el.name}"][value="${el.value}"]` : '');
  const draw = () => {
    const active = document.activeElement;
    const again = active && steps.contains(active) ? focusKey(active) : '';
    redraw();
    if (again) steps.querySelector(again)?.focus();
  };
  const redraw = () => {
    clear(steps, kmsStep());
    if (!st.region) {
      steps.append(h('li', { class: 'kw-step' }, h('p', { class: 'hint' }, 'Choose the region to see the next steps.')));
      testBtn.disabled = true;
      return;
    }
    testBtn.disabled = false;
    const hsm = st.provider === 'azure-key-vault' && st.key?.config?.managed_hsm_name;
    steps.append(...(st.provider === 'aws-kms' ? awsSteps() : hsm ? hsmSteps() : azureSteps()));
  };

  const saveAzure = async (vaultName, prefix, out) => {
    if (!vaultName || !prefix) {
      showError(ctx, out, 'Enter both the Key Vault name and the Key name.');
      return false;
    }
    const cfg = st.key?.config || {};
    if (st.key && cfg.key_vault_name === vaultName && cfg.key_name_prefix === prefix) return true;
    const body = { azure: { key_vault_name: vaultName, key_name_prefix: prefix } };
    return save(body, out);
  };

  // POST a new record or PATCH the wizard's own; the answer carries the setup (full key name).
  const save = async (body, out) => {
    try {
      if (st.key) {
        st.key = await call(ctx, 'PATCH', `${base}/${encodeURIComponent(st.key.id)}`, body);
      } else {
        st.key = await call(ctx, 'POST', base, { provider: st.provider, region: st.region, ...body });
        st.createdHere = true;
      }
      draw();
      document.getElementById('kw-full-key-name')?.closest('.kw-step')?.querySelector('code')?.focus?.();
      await onDone?.();
      return true;
    } catch (e) {
      showError(ctx, out, e);
      return false;
    }
  };

  testBtn.addEventListener('click', async () => {
    if (st.busy) return;
    st.busy = true;
    testBtn.disabled = true;
    testBtn.setAttribute('aria-busy', 'true');
    clear(result, h('p', {}, 'Testing the encryption key…'));
    try {
      if (st.provider === 'aws-kms') {
        const arn = st.arnInput.value.trim();
        if (!arn) throw new Error('Enter the key ARN first.');
        if (!st.key || st.key.key_name !== arn) {
          if (!(await save({ aws: { key_arn: arn } }, result))) return;
        }
      } else if (!st.key?.config?.managed_hsm_name) {
        const ok = await saveAzure(document.getElementById('kw-vault-name').value.trim(),
          document.getElementById('kw-key-prefix').value.trim(), result);
        if (!ok) return;
      }
      const tested = await call(ctx, 'POST', `${base}/${encodeURIComponent(st.key.id)}:test`);
      st.key = { ...st.key, ...tested };
      showChecks(tested);
      await onDone?.();
    } catch (e) {
      showError(ctx, result, e, 'Test Encryption Key and Create: ');
    } finally {
      st.busy = false;
      testBtn.disabled = false;
      testBtn.removeAttribute('aria-busy');
    }
  });

  const showChecks = (tested) => {
    for (const slot of Object.values(checkSlots)) { clear(slot); slot.hidden = true; }
    for (const c of tested.checks || []) {
      const slot = checkSlots[stepForCheck(st.provider, c)] || checkSlots.hsm || checkSlots.kms;
      slot.hidden = false;
      slot.append(h('li', { class: `kw-check ${c.ok ? 'kw-ok' : 'kw-fail'}`, 'data-check': c.step },
        h('span', { class: 'kw-check-mark', 'aria-hidden': 'true' }, c.ok ? '✓' : '✗'), ' ',
        h('strong', {}, `${c.step} ${c.ok ? 'passed' : 'failed'}`), `: ${c.message}`));
    }
    if (tested.state === 'active') {
      clear(result, h('p', { class: 'notice notice-success' },
        `The encryption key ${tested.key_name} for ${tested.region} is active. Clusters created in ${tested.region} on ${st.provider === 'aws-kms' ? 'AWS' : 'Azure'} use it automatically.`));
      st.createdHere = false; // keep it on Cancel/Close
      cancelBtn.textContent = 'Close';
    } else {
      const first = (tested.checks || []).find((c) => !c.ok);
      clear(result, h('p', { class: 'notice notice-error', role: 'alert' },
        `The test failed (the key record stays ${tested.state}): ${first ? `${first.step}: ${first.message}` : tested.status_message}. Fix the step marked below and test again.`));
    }
  };

  cancelBtn.addEventListener('click', async () => {
    // A record this wizard created and that never passed its test is removed, so its region
    // stays free; one opened with Continue setup is kept.
    if (st.createdHere && st.key && st.key.state !== 'active') {
      try {
        await call(ctx, 'DELETE', `${base}/${encodeURIComponent(st.key.id)}`);
        ctx.notify?.(`Removed the pending key record ${st.key.key_name}`, 'info');
      } catch (e) {
        ctx.notify?.(e.message, 'error');
      }
      await onDone?.();
    }
    onClose?.();
  });

  draw();
}

// A link that downloads `obj` as a JSON file, built in the browser (no request to any server).
function download(filename, obj, label, id) {
  const url = URL.createObjectURL(new Blob([`${JSON.stringify(obj, null, 2)}\n`], { type: 'application/json' }));
  return h('a', { id, class: 'kw-button', href: url, download: filename }, label);
}
