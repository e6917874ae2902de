// The console's only way to the server: the public REST API under /api/v1, with the signed-in
// user's token as a bearer header. The token lives in sessionStorage (gone when the tab closes,
// never in a cookie, so no other site can make the browser send it).
const TOKEN_KEY = 'keyward.token';

let unauthorizedHandler = null;

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

// Sign-out forgets everything this tab kept: the token and the chosen project.
export function clearSession() {
  sessionStorage.clear();
}

// Called with the server's message when any call answers 401 (expired or revoked token).
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

// The message of an answer that failed, in the API's words.
export function errorMessage(r) {
  return r?.body?.error?.message || `the server answered HTTP ${r?.status ?? '?'}`;
}

// api('GET', '/projects') → { status, body, headers }. Never throws: a network failure is a
// status 0 with the API's error shape, so pages handle every failure the same way.
export async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    return {
      status: 0,
      headers: new Headers(),
      body: { error: { code: 'unreachable', message: `cannot reach the keyward server (${e.message}); check that keyward serve is running, then retry` } },
    };
  }
  const text = await res.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { error: { code: 'bad_response', message: `the server answered HTTP ${res.status} with a body that is not JSON` } };
    }
  }
  if (res.status === 401 && unauthorizedHandler && t) unauthorizedHandler(errorMessage({ status: 401, body: parsed }));
  return { status: res.status, body: parsed, headers: res.headers };
}

// Every item of a paged list (page_size/page_token), up to `max`.
export async function listAll(path, max = 2000) {
  const items = [];
  let pageToken = '';
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const r = await api('GET', `${path}${sep}page_size=500${pageToken ? `&page_token=${encodeURIComponent(pageToken)}` : ''}`);
    if (r.status !== 200) return { ...r, items };
    items.push(...(r.body.items || []));
    pageToken = r.body.next_page_token;
    if (!pageToken || items.length >= max) return { status: 200, body: r.body, headers: r.headers, items };
  }
}
