/**
 * The status page in a real browser: Debian's chromium, driven by
 * playwright-core, loads `zbk serve`'s page (token mode: ?token= once, then
 * the cookie) against the repository test/serve/fixture.ts makes, and the
 * tables, charts and restore timeline show that repository's figures as the
 * services' --json gives them. No request goes anywhere but the server.
 *
 * ZBK_SCREENSHOTS=1 also copies the screenshot to docs/img/status-page.png
 * (the README shows it); otherwise it stays in the temp dir, so a test run
 * never changes the tree.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { formatBytes } from '../../src/cli/format.js';
import { costReport } from '../../src/services/cost.js';
import { costCompare } from '../../src/services/cost-compare.js';
import { restoreStatus } from '../../src/services/restore/status.js';
import { parseListen } from '../../src/services/serve/auth.js';
import { startServer, type RunningServer } from '../../src/services/serve/server.js';
import { status } from '../../src/services/status.js';
import { repoRoot } from '../helpers/paths.js';
import { serveFixture, type ServeFixture } from './fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'page-test-token-0123456789abcdef';
const usd = (n: number): string => `$${n.toFixed(4)}`;

test('status page in chromium: datasets, charts, restore timeline and cost show the repository figures', { timeout: 180_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    // Under CI the browser is installed by scripts/test.sh: missing is a failure there.
    if (process.env.CI) assert.fail(`${CHROMIUM} is missing (apt-get install chromium)`);
    t.skip(`${CHROMIUM} is not installed`);
    return;
  }
  let fx: ServeFixture | undefined;
  let server: RunningServer | undefined;
  let browser: Browser | undefined;
  try {
    fx = await serveFixture();
    server = await startServer(fx.ctx, { listen: parseListen('127.0.0.1:0'), token: TOKEN, maxAgeSeconds: 26 * 3600 });
    const st = await status(fx.ctx);
    const cost = costReport(fx.ctx);
    const restore = await restoreStatus(fx.ctx);
    const compare = costCompare(fx.ctx);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('response', (r) => {
      if (r.status() >= 400) errors.push(`HTTP ${r.status()} ${r.url()}`);
    });

    await page.goto(`${server.url}?token=${TOKEN}`);
    assert.equal(page.url(), server.url, 'the token left the address bar');
    await page.waitForSelector('body[data-ready]');
    assert.equal(await page.getAttribute('body', 'data-ready'), 'true', await page.textContent('#meta') ?? '');
    assert.deepEqual(errors, [], 'no script or CSP errors');

    // Datasets: names, stored bytes (as `zbk status` prints them), monthly cost, age colour.
    const rows = await page.$$eval('#datasets tbody tr', (trs) =>
      trs.map((tr) => ({
        dataset: tr.getAttribute('data-dataset'),
        colour: tr.getAttribute('data-colour'),
        stored: tr.querySelector('[data-field=storedBytes]')!.textContent,
        storedValue: Number(tr.querySelector('[data-field=storedBytes]')!.getAttribute('data-value')),
        cost: tr.querySelector('[data-field=monthlyCost]')!.textContent,
        ageClass: tr.querySelector('[data-field=age] span')!.className,
      })),
    );
    assert.deepEqual(rows.map((r) => r.dataset), st.datasets.map((d) => d.dataset));
    for (const d of st.datasets) {
      const r = rows.find((x) => x.dataset === d.dataset)!;
      assert.ok(d.storedBytes > 0);
      assert.equal(r.storedValue, d.storedBytes, d.dataset);
      assert.equal(r.stored, formatBytes(d.storedBytes), d.dataset);
      assert.equal(r.cost, usd(d.monthlyCost), d.dataset);
    }
    const colours = Object.fromEntries(rows.map((r) => [r.dataset, r.colour]));
    assert.deepEqual(colours, { 'tank/photos': 'green', 'tank/docs': 'amber', 'tank/mail': 'red' });
    assert.ok(rows.every((r) => r.ageClass === `age age-${r.colour}`));
    assert.equal(await page.textContent('#total-monthly'), usd(st.monthlyCost));

    // Charts: two uPlot canvases with pixels drawn, charting the manifest's figures.
    const charts = await page.evaluate(() => {
      // Runs in the page: the DOM types are not in this (Node) program, so the few used are typed here.
      interface Canvas { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null }
      const g = globalThis as unknown as { zbkCharts: Record<string, { data: number[][] }>; document: { querySelectorAll(sel: string): Iterable<Canvas> } };
      const w = g;
      const drawn = [...g.document.querySelectorAll('.chart canvas')].map((c) => {
        const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
        return { width: c.width, height: c.height, painted: n };
      });
      return { drawn, bytes: w.zbkCharts.bytes.data[1]!, cost: w.zbkCharts.cost.data[1]! };
    });
    assert.equal(charts.drawn.length, 2);
    for (const c of charts.drawn) assert.ok(c.width > 0 && c.height > 0 && c.painted > 1000, JSON.stringify(c));
    const totalStored = st.datasets.reduce((n, d) => n + d.storedBytes, 0);
    assert.equal(charts.bytes[charts.bytes.length - 1], totalStored, 'stored bytes now');
    assert.ok(charts.bytes.every((v, i) => i === 0 || v >= charts.bytes[i - 1]!), 'stored bytes accumulate');
    assert.ok(charts.bytes.length >= 5, 'a point per push time and now');
    assert.ok(Math.abs(charts.cost[charts.cost.length - 1]! - st.monthlyCost) < 1e-12, 'monthly cost now');

    // The restore plan: one box per planned month, with its bytes.
    const job = restore.restores[0]!;
    assert.ok(job.months.length >= 2, `the fixture's restore spans months (${job.months.length})`);
    const months = await page.$$eval('#restores .job[data-dataset="tank/photos"] .month', (ms) => ms.map((m) => ({ month: m.getAttribute('data-month'), bytes: Number(m.getAttribute('data-bytes')) })));
    assert.deepEqual(months, job.months.map((m) => ({ month: m.month, bytes: m.bytes })));

    // Cost breakdown and projection as `zbk cost --json`.
    const byDataset = await page.$$eval('#cost-by-dataset tbody tr', (trs) => trs.map((tr) => [tr.getAttribute('data-dataset'), tr.querySelector('[data-field=total]')!.textContent]));
    assert.deepEqual(byDataset, cost.byDataset.map((l) => [l.name, usd(l.total)]));
    assert.equal(await page.$$eval('#cost-projection tbody tr', (trs) => trs.length), cost.projection.length);

    // The provider comparison as `zbk cost compare --json`: every profile, cheapest first, the configured one marked.
    const cmp = await page.$$eval('#compare tbody tr', (trs) => trs.map((tr) => [tr.getAttribute('data-provider'), tr.className, tr.querySelector('[data-field=totalWithRestore]')!.textContent]));
    assert.deepEqual(cmp, compare.providers.map((p) => [p.provider, p.current ? 'current' : '', usd(p.totalWithRestore)]));
    assert.ok(compare.providers.length >= 6, 'every provider profile');
    assert.equal(await page.isVisible('#compare-box'), true);

    // Recent pushes, the failed push and the hook results.
    assert.equal(await page.$$eval('#pushes tbody tr', (trs) => trs.length), st.datasets.reduce((n, d) => n + d.chain.length, 0));
    assert.match((await page.textContent('#failures tbody')) ?? '', /tank\/mail.*AccessDenied/s);
    const hooks = (await page.textContent('#hooks tbody')) ?? '';
    assert.match(hooks, /webhook: webhook to hc-ping\.com.*failed \(HTTP 503\)/s);
    assert.match(hooks, /post-push: hook \/usr\/local\/bin\/notify.*ok/s);

    assert.ok(requests.length > 0 && requests.every((u) => u.startsWith(server!.url)), `only the server was asked: ${requests.filter((u) => !u.startsWith(server!.url)).join(', ')}`);

    const shot = join(fx.dir, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000);
    if (process.env.ZBK_SCREENSHOTS === '1') {
      mkdirSync(join(repoRoot, 'docs', 'img'), { recursive: true });
      copyFileSync(shot, join(repoRoot, 'docs', 'img', 'status-page.png'));
    }
  } finally {
    await browser?.close();
    await server?.close();
    fx?.cleanup();
  }
});
