// Small DOM helpers shared by the shell and the pages. Text always goes in as text nodes (never
// innerHTML), so names and messages from the server cannot inject markup.

// h('button', { class: 'primary', onclick: fn }, 'Confirm') → <button class="primary">Confirm</button>
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let ids = 0;
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

// A labelled form row: <label for> + control + optional hint (aria-describedby).
export function field(label, control, hint) {
  if (!control.id) control.id = uid('field');
  const row = h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
  if (hint) {
    const hintEl = hint instanceof Node ? hint : h('p', { class: 'hint' }, hint);
    if (!hintEl.id) hintEl.id = uid('hint');
    control.setAttribute('aria-describedby', hintEl.id);
    row.append(hintEl);
  }
  return row;
}

export function select(options, attrs = {}) {
  return h('select', attrs, options.map((o) => (typeof o === 'string'
    ? h('option', { value: o }, o)
    : h('option', { value: o.value, selected: o.selected, disabled: o.disabled }, o.label))));
}

// Writes `text` to the clipboard: the Clipboard API where the page may use it, else a hidden
// textarea and execCommand('copy') (older browsers, or a console served over plain HTTP from a
// non-loopback host, which is not a secure context).
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch { /* permission refused: try the fallback */ }
  }
  const ta = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch { ok = false; }
  ta.remove();
  return ok;
}

// The Copy button: copies `text` and says so in place and to screen readers ("Copied").
// `describes` names what is copied for assistive technology ("Copy redis-cli command").
export function copyButton(text, label = 'Copy', notify = null, describes = '') {
  const b = h('button', { type: 'button', class: 'copy', 'aria-label': describes ? `${label} ${describes}` : null }, label);
  b.dataset.copyText = text;
  b.addEventListener('click', async () => {
    const ok = await copyText(text);
    b.textContent = ok ? 'Copied' : 'Copy failed';
    if (notify) notify(ok ? 'Copied to the clipboard' : 'Could not copy: select the text and copy it by hand', ok ? 'info' : 'error');
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

// A value shown as code with its Copy button beside it.
export function codeWithCopy(text, label = 'Copy', notify = null, describes = '') {
  return h('div', { class: 'code-copy' }, h('code', {}, text), copyButton(text, label, notify, describes));
}

// A modal confirmation (native <dialog>: focus trapped, Escape cancels). With `typeToConfirm`,
// the confirm button stays disabled until that exact text is typed. Resolves true or false.
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false, typeToConfirm = '' }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const input = typeToConfirm ? h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' }) : null;
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary', disabled: !!typeToConfirm }, confirmLabel);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title),
      message instanceof Node ? message : h('p', {}, message),
      input ? field(`Type ${typeToConfirm} to confirm`, input) : null,
      h('div', { class: 'actions' }, cancel, ok));
    let result = false;
    if (input) input.addEventListener('input', () => { ok.disabled = input.value !== typeToConfirm; });
    ok.addEventListener('click', () => { result = true; dlg.close(); });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    // A modal <dialog> makes the page behind it inert, but Tab past its last control leaves the
    // document (to the browser's own controls): wrap around inside the dialog instead.
    dlg.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const stops = [...dlg.querySelectorAll('button, input, select, textarea, a[href]')].filter((el) => !el.disabled);
      if (!stops.length) return;
      const first = stops[0];
      const last = stops[stops.length - 1];
      if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      } else if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    (input || cancel).focus();
  });
}

export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return h('time', { datetime: iso, title: iso }, d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/Z$/, ' UTC'));
}

// A state shown as text with a colour class (the colour is never the only cue).
export function stateBadge(state) {
  return h('span', { class: `badge state-${String(state).replace(/[^a-z_-]/g, '')}` }, state);
}

// On narrow screens each row becomes a card: every cell shows its column's name (data-label).
export function table(headers, rows, caption) {
  for (const row of rows) {
    [...row.children].forEach((td, i) => { if (headers[i]) td.dataset.label = headers[i]; });
  }
  // A table wider than the page scrolls sideways: the scrolling box takes keyboard focus (arrow
  // keys scroll it) and is named after the table.
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption ? `${caption} table` : 'Table' }, h('table', { class: 'cards-on-narrow' },
    caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)));
}

// A heading row with the page title and, on the right, the page's main action.
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', { tabindex: '-1' }, title), h('div', { class: 'page-actions' }, actions));
}

export function notice(kind, ...children) {
  return h('div', { class: `notice notice-${kind}` }, children);
}
