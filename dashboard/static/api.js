// The dashboard HTTP API (dashboard/API.md) as small async functions. A 401
// means the session is gone: the page goes back to the login form.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

export function toLogin() {
  window.location.assign('/login');
}

/** The URL of an export download (GET /api/export) of `req` as `format` (csv | parquet). */
export function exportUrl(format, req) {
  return `/api/export?format=${encodeURIComponent(format)}&request=${encodeURIComponent(JSON.stringify(req))}`;
}

async function request(path, { method = 'GET', body, signal } = {}) {
  const init = { method, signal, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'The dashboard server cannot be reached. Check your connection.');
  }
  if (res.status === 401) {
    toLogin();
    throw new ApiError(401, 'Your session has ended. Please log in again.');
  }
  const text = await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      if (res.ok) throw new ApiError(res.status, `${path} answered with something that is not JSON`);
    }
  }
  if (!res.ok) {
    const msg = (json && json.error) || `${path} failed with HTTP ${res.status}`;
    const err = new ApiError(res.status, msg);
    err.retryAfter = res.headers.get('Retry-After');
    throw err;
  }
  return json;
}

export const api = {
  datasets: () => request('/api/datasets'),
  status: () => request('/api/status'),
  config: () => request('/api/config'),
  query: (body, signal) => request('/api/query', { method: 'POST', body, signal }),
  reload: () => request('/api/reload', { method: 'POST', body: {} }),
  resume: () => request('/api/resume', { method: 'POST', body: {} }),
  /** The pyarrow.flight program reading the rows of an export request (text). */
  pythonSnippet: async (req) => {
    const res = await fetch(`/api/export/python?request=${encodeURIComponent(JSON.stringify(req))}`, { credentials: 'same-origin' });
    if (res.status === 401) {
      toLogin();
      throw new ApiError(401, 'Your session has ended. Please log in again.');
    }
    const text = await res.text();
    if (!res.ok) {
      let msg = `the Python snippet failed with HTTP ${res.status}`;
      try {
        msg = JSON.parse(text).error || msg;
      } catch {
        // not JSON: keep the status
      }
      throw new ApiError(res.status, msg);
    }
    return text;
  },
};
