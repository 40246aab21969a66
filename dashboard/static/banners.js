// The cluster as the page shows it, from polling /api/status: the status pill
// and its panel, the cluster banner (suspended, or no worker answering) and
// the reload banner, which follows a reload or a resume until every worker
// serves its data again.

import { api, ApiError } from './api.js';
import { formatBytes, formatCompact, formatCount, replicaSummary } from './format.js';

const STATUS_EVERY_MS = 15000;
const RELOAD_POLL_MS = 1000;

/** A banner's bold lead-in. */
export function bannerTitle(text) {
  const b = document.createElement('strong');
  b.textContent = text;
  return b;
}

/**
 * The status pill for an /api/status answer: its level (ok, busy, warn, bad),
 * its text, and how many workers answer. Pure.
 */
export function statusPill(s) {
  const workers = s.workers || [];
  const ok = workers.filter((w) => w.ok).length;
  const loading = workers.some((w) => (w.datasets || []).some((d) => d.state === 'loading' || d.reloading));
  const failed = workers.some((w) => (w.datasets || []).some((d) => d.state === 'failed'));
  let level = 'ok';
  let text = `${ok}/${workers.length} workers`;
  if (!workers.length || ok === 0) {
    level = 'bad';
    text = workers.length ? 'no workers answering' : 'no workers';
  } else if (!s.complete || ok < workers.length || s.consistent === false || failed) {
    level = 'warn';
  } else if (loading) {
    level = 'busy';
    text += ' · loading';
  }
  return { level, text, answering: ok };
}

/**
 * One /api/status poll of a reload (or resume) under way. `reloading` is
 * {since, seenBusy, polls, refused}: `refused` the workers that would not
 * reload. Returns the next `reloading`, whether the reload is over, and what
 * the banner says: its text, the fraction of workers ready and its kind
 * (info, warn, error). A reload is over when no dataset is loading any more,
 * once one was seen loading (or after three polls, for reloads too quick to
 * see). Pure.
 */
export function reloadProgress(reloading, status) {
  const polls = reloading.polls + 1;
  const workers = status.workers || [];
  const all = workers.flatMap((w) => w.datasets || []);
  const busy = all.filter((d) => d.reloading || d.state === 'loading');
  const seenBusy = reloading.seenBusy || busy.length > 0;
  const next = { ...reloading, polls, seenBusy };
  const answering = workers.filter((w) => w.ok);
  const done = answering.filter((w) => (w.datasets || []).every((d) => !d.reloading && d.state !== 'loading')).length;
  const rows = all.reduce((a, d) => a + (d.rows || 0), 0);
  const failed = all.filter((d) => d.state === 'failed');
  const finished = busy.length === 0 && (seenBusy || polls >= 3);
  const refused = reloading.refused.length
    ? ` · not reloading: ${reloading.refused.map((w) => `${w.endpoint}${w.error ? ` (${w.error})` : ''}`).join(', ')}`
    : '';
  if (!finished) {
    return {
      reloading: next,
      finished,
      text: `Reloading data: ${done} of ${answering.length} workers ready · ${formatCompact(rows)} rows loaded${refused}`,
      fraction: answering.length ? done / answering.length : 0,
      kind: refused ? 'warn' : 'info',
    };
  }
  if (failed.length || refused) {
    const errors = failed.map((d) => `${d.name}: ${d.error || 'failed'}`).join('; ');
    return { reloading: next, finished, text: `Reload finished with errors${errors ? `: ${errors}` : ''}${refused}`, fraction: 1, kind: 'error' };
  }
  return { reloading: next, finished, text: `Data reloaded · ${formatCompact(rows)} rows`, fraction: 1, kind: 'info' };
}

const $ = (sel) => document.querySelector(sel);

let ui = null;
let hooks = null;
let statusTimer = null;
let reloading = null; // {since, seenBusy, polls, refused}

/**
 * Binds the status pill, its panel and the reload button, and starts polling.
 * `showError(e)` shows a failed call in the page's error banner;
 * `onReloaded()` runs when a reload or resume is over (the datasets may have
 * changed).
 */
export function setupBanners({ showError, onReloaded }) {
  ui = {
    statusButton: $('[data-testid="status"]'),
    statusPanel: $('[data-testid="status-panel"]'),
    reload: $('[data-testid="reload"]'),
    reloadBanner: $('[data-testid="reload-banner"]'),
    cluster: $('[data-testid="cluster-banner"]'),
  };
  hooks = { showError, onReloaded };
  bindControls();
  pollStatus();
}

/** True while the cluster banner says the cluster is suspended or no worker answers. */
export function clusterBannerShown() {
  return !!ui && !ui.cluster.hidden;
}

async function pollStatus() {
  clearTimeout(statusTimer);
  if (document.hidden && !reloading) {
    // Nobody is looking: check again when the tab is shown.
    statusTimer = setTimeout(pollStatus, STATUS_EVERY_MS);
    return;
  }
  let status = null;
  try {
    status = await api.status();
    renderStatus(status);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    renderStatusError(e);
  }
  if (reloading) trackReload(status);
  statusTimer = setTimeout(pollStatus, reloading ? RELOAD_POLL_MS : STATUS_EVERY_MS);
}

function renderStatus(s) {
  const workers = s.workers || [];
  const { level, text, answering: ok } = statusPill(s);
  ui.statusButton.dataset.level = level;
  ui.statusButton.querySelector('.pill-text').textContent = text;
  ui.cluster.hidden = ok > 0 && !s.suspended;
  if (s.suspended) {
    // A cluster scaled to zero while idle (the server says so and offers to resume it).
    const resume = document.createElement('button');
    resume.type = 'button';
    resume.className = 'btn btn-small';
    resume.dataset.testid = 'resume';
    resume.textContent = 'Resume';
    resume.addEventListener('click', async () => {
      resume.disabled = true;
      try {
        await api.resume();
        reloading = reloading || { since: Date.now(), seenBusy: false, polls: 0, refused: [] };
        showReloadBanner('Resuming the cluster: starting workers and loading data…', 0);
        pollStatus();
      } catch (e) {
        resume.disabled = false;
        hooks.showError(e);
      }
    });
    ui.cluster.replaceChildren(
      bannerTitle('Cluster suspended.'),
      document.createTextNode(' The workers were stopped while idle. '),
      resume,
    );
  } else if (ok === 0) {
    ui.cluster.replaceChildren(
      bannerTitle('No workers are answering.'),
      document.createTextNode(' The cluster may be starting, scaled to zero, or unreachable. The status panel has details.'),
    );
  }

  // Detail panel
  const rows = [];
  const head = document.createElement('p');
  head.className = 'status-summary';
  head.textContent = `${s.shards ?? '?'} shards${replicaSummary(s.replicas)} · ${s.complete ? 'all answering' : 'incomplete'} · ${s.consistent === false ? 'inconsistent data versions' : 'consistent'}`;
  rows.push(head);
  const table = document.createElement('table');
  table.className = 'status-table';
  table.innerHTML = '<thead><tr><th scope="col">Worker</th><th scope="col">Shard</th><th scope="col">Datasets</th><th scope="col">Queries</th></tr></thead>';
  const tbody = document.createElement('tbody');
  for (const w of workers) {
    const tr = document.createElement('tr');
    tr.className = w.ok ? '' : 'bad';
    const cells = [
      w.endpoint + (w.error ? ` — ${w.error}` : ''),
      w.shard !== undefined && w.shard !== null ? `${w.shard} / ${w.shards}` : '–',
      (w.datasets || [])
        .map((d) => `${d.name}: ${d.reloading ? 'reloading' : d.state}, ${formatCompact(d.rows)} rows, ${formatBytes(d.bytes)}${d.error ? ` (${d.error})` : ''}`)
        .join('; ') || '–',
      w.queries !== undefined ? formatCount(w.queries) : '–',
    ];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    tbody.append(tr);
  }
  table.append(tbody);
  rows.push(table);
  ui.statusPanel.replaceChildren(...rows);
}

function renderStatusError(e) {
  ui.statusButton.dataset.level = 'bad';
  ui.statusButton.querySelector('.pill-text').textContent = 'status unavailable';
  const p = document.createElement('p');
  p.textContent = e.message;
  ui.statusPanel.replaceChildren(p);
}

async function startReload() {
  ui.reload.disabled = true;
  try {
    const res = await api.reload();
    const refused = ((res && res.workers) || []).filter((w) => !w.ok);
    reloading = { since: Date.now(), seenBusy: false, polls: 0, refused };
    showReloadBanner('Reloading data from the source…', 0);
    pollStatus();
  } catch (e) {
    ui.reload.disabled = false;
    hooks.showError(e);
  }
}

/** Follows a reload through /api/status until every worker serves all its datasets again. */
function trackReload(status) {
  if (!status) return;
  const p = reloadProgress(reloading, status);
  if (!p.finished) {
    reloading = p.reloading;
    showReloadBanner(p.text, p.fraction, p.kind);
    return;
  }
  reloading = null;
  ui.reload.disabled = false;
  showReloadBanner(p.text, p.fraction, p.kind);
  if (p.kind !== 'error') {
    setTimeout(() => {
      if (!reloading) ui.reloadBanner.hidden = true;
    }, 4000);
  }
  hooks.onReloaded();
}

function showReloadBanner(text, fraction, kind = 'info') {
  const bar = document.createElement('div');
  bar.className = 'bar';
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', String(Math.round(fraction * 100)));
  const fill = document.createElement('span');
  fill.style.width = `${Math.round(fraction * 100)}%`;
  bar.append(fill);
  ui.reloadBanner.className = `banner ${kind}`;
  ui.reloadBanner.replaceChildren(document.createTextNode(text), bar);
  if (kind === 'error') {
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'link';
    close.textContent = 'Dismiss';
    close.addEventListener('click', () => {
      ui.reloadBanner.hidden = true;
    });
    bar.hidden = true;
    ui.reloadBanner.append(document.createTextNode(' '), close);
  }
  ui.reloadBanner.hidden = false;
}

function closeStatusPanel() {
  ui.statusPanel.hidden = true;
  ui.statusButton.setAttribute('aria-expanded', 'false');
}

function bindControls() {
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) pollStatus();
  });
  // A reload is felt by everyone on the cluster: ask first.
  const confirmReload = $('[data-testid="reload-confirm"]');
  ui.reload.addEventListener('click', () => {
    confirmReload.returnValue = '';
    confirmReload.showModal();
  });
  confirmReload.addEventListener('close', () => {
    if (confirmReload.returnValue === 'reload') startReload();
  });
  ui.statusButton.addEventListener('click', () => {
    const open = ui.statusPanel.hidden;
    ui.statusPanel.hidden = !open;
    ui.statusButton.setAttribute('aria-expanded', String(open));
    if (open) pollStatus();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !ui.statusPanel.hidden) {
      closeStatusPanel();
      ui.statusButton.focus();
    }
  });
  document.addEventListener('click', (e) => {
    if (!ui.statusPanel.hidden && !ui.statusPanel.contains(e.target) && !ui.statusButton.contains(e.target)) {
      closeStatusPanel();
    }
  });
}
