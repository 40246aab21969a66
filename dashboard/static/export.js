// Export of the selection (dashboard/API.md, GET /api/export): CSV or Parquet
// downloads streamed by the dashboard from the workers, and "copy as Python",
// a pyarrow.flight program that reads the same rows from the workers.

import { api, exportUrl } from './api.js';
import { formatCount } from './format.js';

/**
 * Adds the export controls after `anchor` (on the map, under "Filter by map
 * view": they export what the filters and the map view select). `selection()`
 * returns { request, selected }: the export request of the current view
 * ({dataset, filters, viewport, viewportFilter}) and the counter's value, or
 * null while nothing is loaded.
 */
export function setupExport(anchor, selection) {
  const box = document.createElement('div');
  box.className = 'export';
  box.dataset.testid = 'export';
  const button = (label, id, title) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'btn btn-small';
    b.textContent = label;
    b.dataset.testid = id;
    b.title = title;
    return b;
  };
  const csv = button('CSV ⤓', 'export-csv', 'Download the selected rows (filters and map view) as CSV');
  const parquet = button('Parquet ⤓', 'export-parquet', 'Download the selected rows (filters and map view) as Parquet');
  const python = button('Copy as Python', 'copy-python', 'Copy a Python program that reads the selected rows with pyarrow.flight');
  const message = document.createElement('span');
  message.className = 'export-message';
  message.dataset.testid = 'export-message';
  message.setAttribute('role', 'status');
  message.hidden = true;
  box.append(csv, parquet, python, message);
  anchor.after(box);

  let limit = null;
  api.config().then((c) => {
    limit = c && Number.isFinite(c.exportRowLimit) ? c.exportRowLimit : null;
  }).catch(() => {});
  let timer = null;
  const say = (text, level = 'info') => {
    message.textContent = text;
    message.dataset.level = level;
    message.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(() => {
      message.hidden = true;
    }, level === 'error' ? 12000 : 4000);
  };

  const download = (format) => {
    const s = selection();
    if (!s) return;
    if (s.selected === 0) {
      say('No rows are selected: there is nothing to export.', 'error');
      return;
    }
    if (limit !== null && s.selected > limit) {
      say(`${formatCount(s.selected)} rows are selected; the export limit is ${formatCount(limit)} rows. Narrow the filters or the map view.`, 'error');
      return;
    }
    const a = document.createElement('a');
    a.href = exportUrl(format, s.request);
    a.download = `${s.request.dataset}-export.${format}`;
    document.body.append(a);
    a.click();
    a.remove();
    say(`Exporting ${formatCount(s.selected)} rows as ${format === 'csv' ? 'CSV' : 'Parquet'}…`);
  };
  csv.addEventListener('click', () => download('csv'));
  parquet.addEventListener('click', () => download('parquet'));

  python.addEventListener('click', async () => {
    const s = selection();
    if (!s) return;
    let text;
    try {
      text = await api.pythonSnippet(s.request);
    } catch (e) {
      say(e.message, 'error');
      return;
    }
    python.dataset.snippet = text;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard API (an insecure origin): copy through a selected text area.
      const area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.style.position = 'fixed';
      area.style.opacity = '0';
      document.body.append(area);
      area.select();
      const ok = document.execCommand('copy');
      area.remove();
      if (!ok) {
        say('The browser refused the clipboard; the snippet is in the button\'s data-snippet attribute.', 'error');
        return;
      }
    }
    say('Python snippet copied: set QUIVER_WORKER_TOKEN and run it where the workers are reachable.');
  });
}
