// zbk serve's page: renders /api/page.json (the services' --json results).
// It computes no figure of its own: it formats them as the CLI does
// (bytes as pretty-bytes with ≤ 2 decimals, dollars with 4) and charts them.
// Every figure cell carries its raw value in data-value (the browser test
// compares those and the text with the services' JSON).
'use strict';

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/** As src/cli/format.ts formatBytes (pretty-bytes, maximumFractionDigits 2). */
function fmtBytes(n) {
  if (n < 1) return `${n} B`;
  const e = Math.min(Math.floor(Math.log10(n) / 3), UNITS.length - 1);
  return `${(n / 1000 ** e).toLocaleString('en-US', { maximumFractionDigits: 2 })} ${UNITS[e]}`;
}
const fmtUSD = (n) => `$${n.toFixed(4)}`;
const day = (iso) => (iso ? iso.slice(0, 10) : '-');
const when = (iso) => (iso ? iso.slice(0, 19).replace('T', ' ') : '-');

/** "1d 2h", "3h 5m", "42s" (as zbk check prints ages). */
function fmtAge(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return m ? `${m}m` : `${s}s`;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k === 'title') e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const num = (field, value, text) => el('td', { class: 'num', 'data-field': field, 'data-value': value }, text);
const bytesCell = (field, n) => el('td', { class: 'num', 'data-field': field, 'data-value': n, title: `${n.toLocaleString('en-US')} bytes` }, fmtBytes(n));
const usdCell = (field, n) => num(field, n, fmtUSD(n));
const txt = (field, t) => el('td', { 'data-field': field }, t);

function fill(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
  if (!rows.length) body.append(el('tr', { class: 'none' }, el('td', { colSpan: 9 }, 'none')));
}

function renderDatasets(page) {
  const st = page.status;
  if (!st) return;
  const ages = new Map(page.ages.map((a) => [a.dataset, a]));
  fill('datasets', st.datasets.map((d) => {
    const a = ages.get(d.dataset);
    const age = el('span', { class: `age age-${a.colour}`, title: a.reason || `below --max-age (${fmtAge(page.maxAgeSeconds)})` }, a.seconds === null ? 'never' : fmtAge(a.seconds));
    return el('tr', { 'data-dataset': d.dataset, 'data-colour': a.colour },
      txt('dataset', d.dataset),
      el('td', { 'data-field': 'health', class: `health-${d.health}` }, d.health),
      txt('latestPushed', d.latestPushed ? `@${d.latestPushed}` : '-'),
      txt('lastPushAt', when(d.lastPushAt)),
      el('td', { 'data-field': 'age', 'data-value': a.seconds }, age),
      bytesCell('storedBytes', d.storedBytes), num('objects', d.objects, d.objects), usdCell('monthlyCost', d.monthlyCost));
  }));
  const total = document.getElementById('total-monthly');
  total.dataset.value = st.monthlyCost;
  total.textContent = fmtUSD(st.monthlyCost);
  total.className = 'num';
  document.getElementById('price-date').textContent = st.priceTableDate;
  document.getElementById('provider').textContent = st.provider;
  // The chain of each dataset, folded: it can be long.
  document.getElementById('chains').replaceChildren(...st.datasets.map((d) => {
    const t = el('table', { class: 'chain', 'data-dataset': d.dataset },
      el('thead', {}, el('tr', {}, ...['kind', 'from', 'to', 'stored', 'objects', 'pushed', 'health'].map((h) => el('th', {}, h)))),
      el('tbody', {}, ...d.chain.map((c) => el('tr', {}, txt('kind', c.kind), txt('from', c.from ? `@${c.from}` : ''), txt('to', `@${c.to}`),
        bytesCell('storedBytes', c.storedBytes), num('objects', c.objects, c.objects), txt('pushedAt', when(c.pushedAt)),
        el('td', { class: c.damaged.length ? 'health-broken' : '' }, c.damaged.length ? `DAMAGED (${c.damaged.length})` : 'ok')))));
    return el('details', {}, el('summary', {}, `${d.dataset}: chain of ${d.chain.length} stream(s)${d.health === 'broken' ? ' — BROKEN: ' + (d.integrity.remedy || '') : ''}`), t);
  }));
}

function chart(id, label, points, value, format) {
  const box = document.getElementById(id);
  box.replaceChildren();
  if (!points.length) {
    box.append(el('p', { class: 'none' }, 'nothing pushed yet'));
    return null;
  }
  const xs = points.map((p) => Date.parse(p.at) / 1000);
  const ys = points.map(value);
  const opts = {
    width: 560, height: 240,
    scales: { y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [{}, { size: 100, values: (_u, ticks, _axis, _space, incr) => ticks.map((t) => format(t, incr)) }],
    series: [{}, { label, stroke: '#1a5fb4', fill: 'rgba(26,95,180,0.12)', width: 2, paths: uPlot.paths.stepped({ align: 1 }), value: (_u, v) => (v === null ? '-' : format(v)) }],
  };
  return new uPlot(opts, [xs, ys], box);
}

function renderCharts(page) {
  // Exposed for the browser test: it reads the charted data back.
  window.zbkCharts = {
    bytes: chart('chart-bytes', 'stored', page.history, (p) => p.storedBytes, fmtBytes),
    // Axis ticks with as many decimals as their step needs (a small repository costs fractions of a cent).
    cost: chart('chart-cost', 'USD / month', page.history, (p) => p.monthlyCost, (v, incr) => (incr ? `$${v.toFixed(Math.min(8, Math.max(2, Math.ceil(-Math.log10(incr)))))}` : fmtUSD(v))),
  };
}

function renderRestores(page) {
  const jobs = page.restore ? page.restore.restores : [];
  if (!jobs.length) return;
  document.getElementById('restores').replaceChildren(...jobs.map((j) => {
    const months = j.months.map((m) => {
      const done = m.volumes.reduce((n, v) => n + v.downloadedBytes, 0);
      const pct = m.bytes > 0 ? Math.min(100, (100 * done) / m.bytes) : 100;
      const bar = el('span', {});
      bar.style.width = `${pct.toFixed(1)}%`;
      const phases = [...new Set(m.volumes.map((v) => v.phase))].join(', ') || 'nothing planned';
      return el('div', { class: 'month', 'data-month': m.month, 'data-bytes': m.bytes, 'data-downloaded': done },
        el('strong', {}, m.month), el('div', { class: 'bar', title: `${pct.toFixed(1)}% downloaded` }, bar),
        el('div', {}, `${m.volumes.length} volume(s), ${fmtBytes(m.bytes)}`), el('div', { class: 'muted' }, phases),
        el('div', {}, `planned ${fmtUSD(m.plannedCost)}, spent ${fmtUSD(m.spent)}`));
    });
    const next = j.next ? `next: ${j.next.what}${j.next.at ? ` at ${when(j.next.at)}` : ''}` : '';
    return el('div', { class: 'job', 'data-dataset': j.dataset },
      el('div', {}, el('strong', {}, `${j.dataset}@${j.snapshot}`), ` → ${j.target || '(target not set)'}: ${fmtBytes(j.totalBytes)}, planned ${fmtUSD(j.plannedCost)}, spent ${fmtUSD(j.spent)}, finish ${day(j.finish)}${j.finishedAt ? `, finished ${when(j.finishedAt)}` : ''}`),
      el('div', { class: 'muted' }, next), j.blocked ? el('div', { class: 'health-broken' }, `blocked: ${j.blocked.remedy || ''}`) : '',
      el('div', { class: 'timeline' }, ...months));
  }));
}

function renderCost(page) {
  const c = page.cost;
  if (!c) return;
  document.getElementById('cost-summary').textContent =
    `${fmtUSD(c.monthly)} / month now; next ${c.projection.length} months ${fmtUSD(c.projectionTotal)}; prices ${c.priceTable.provider} ${c.priceTable.region} as of ${c.priceTable.asOf}` +
    (c.warnings.length ? ` — ${c.warnings.join('; ')}` : '');
  fill('cost-by-dataset', c.byDataset.map((l) => el('tr', { 'data-dataset': l.name }, txt('name', l.name), num('objects', l.objects, l.objects),
    bytesCell('storedBytes', l.storedBytes), usdCell('data', l.data), usdCell('overhead', l.overhead), usdCell('total', l.total))));
  fill('cost-projection', c.projection.map((p) => el('tr', { 'data-month': p.month }, num('month', p.month, p.month), txt('from', day(p.from)),
    usdCell('existing', p.existing), usdCell('growth', p.growth), usdCell('total', p.total))));
}

function renderCompare(page) {
  const c = page.compare;
  if (!c) return;
  document.getElementById('compare-summary').textContent =
    `this repository over ${c.months} months on every provider profile (zbk cost compare): storage, requests, early deletion and one full restore of the latest snapshot at the end within each provider's free allowance (restore months); USD, cheapest first`;
  fill('compare', c.providers.map((p) => el('tr', { 'data-provider': p.provider, class: p.current ? 'current' : '' },
    txt('provider', `${p.provider}${p.current ? ' (configured)' : ''}`), txt('region', p.region), usdCell('monthlyNow', p.monthlyNow),
    usdCell('storage', p.storage), usdCell('requests', p.requests), usdCell('earlyDeletion', p.earlyDeletion), usdCell('restoreCost', p.restoreCost),
    num('restoreMonths', p.restoreMonths, p.restoreMonths), usdCell('totalWithRestore', p.totalWithRestore))));
  document.getElementById('compare-box').hidden = false;
}

function renderEvents(page) {
  fill('pushes', page.pushes.map((p) => el('tr', {}, txt('pushedAt', when(p.pushedAt)), txt('dataset', p.dataset), txt('kind', p.kind), txt('snapshot', `@${p.snapshot}`), bytesCell('storedBytes', p.storedBytes))));
  fill('failures', page.failures.map((e) => el('tr', { class: 'health-broken' }, txt('at', when(e.at)), txt('dataset', e.dataset || ''), txt('message', `${e.detail.code || ''}: ${e.detail.message || ''}`))));
  fill('hooks', page.hooks.map((e) => el('tr', { class: e.detail.ok ? '' : 'health-broken' }, txt('at', when(e.at)), txt('dataset', e.dataset || ''),
    txt('hook', `${e.detail.stage}: ${e.detail.what}`), txt('result', e.detail.ok ? 'ok' : `failed${e.detail.detail ? ` (${e.detail.detail})` : ''}`))));
}

async function main() {
  const res = await fetch('/api/page.json', { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`/api/page.json: HTTP ${res.status}`);
  const page = await res.json();
  document.getElementById('meta').textContent = `${page.status ? page.status.store : ''} — as of ${when(page.generatedAt)} UTC; age colours against --max-age ${fmtAge(page.maxAgeSeconds)}`;
  const errs = Object.entries(page.errors);
  if (errs.length) {
    const box = document.getElementById('errors');
    box.replaceChildren(...errs.map(([k, m]) => el('p', {}, `${k}: ${m}`)));
    box.hidden = false;
  }
  renderDatasets(page);
  renderCharts(page);
  renderRestores(page);
  renderCost(page);
  renderCompare(page);
  renderEvents(page);
  document.body.dataset.ready = 'true';
}

main().catch((err) => {
  document.getElementById('meta').textContent = `could not load: ${err.message}`;
  document.body.dataset.ready = 'error';
});
