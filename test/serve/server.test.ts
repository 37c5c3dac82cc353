/**
 * `zbk serve` over real sockets: the API returns what the services' --json
 * returns, the page and uPlot are served from the package, and the access
 * rules hold (read-only, Host check on loopback, token by header, by
 * ?token= once then cookie, constant-time compare), with the documented
 * exit codes for bad addresses, missing tokens and a port in use.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ConfigError, OperationError, UsageError } from '../../src/errors.js';
import { costReport } from '../../src/services/cost.js';
import { restoreStatus } from '../../src/services/restore/status.js';
import { assertListenAllowed, loadToken, parseListen, tokenFileWarning } from '../../src/services/serve/auth.js';
import { startServer, type RunningServer } from '../../src/services/serve/server.js';
import { status } from '../../src/services/status.js';
import { runZbk, startZbk } from '../helpers/cli.js';
import { serveFixture, type ServeFixture } from './fixture.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request (fetch would not let the test set Host). */
function get(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const TOKEN = 'a-test-token-of-enough-length-0123';
let fx: ServeFixture;
let open: RunningServer;
let guarded: RunningServer;

before(async () => {
  fx = await serveFixture();
  open = await startServer(fx.ctx, { listen: parseListen('127.0.0.1:0'), token: null, maxAgeSeconds: 26 * 3600 });
  guarded = await startServer(fx.ctx, { listen: parseListen('127.0.0.1:0'), token: TOKEN, maxAgeSeconds: 26 * 3600 });
});
after(async () => {
  await open?.close();
  await guarded?.close();
  fx?.cleanup();
});

test('serve: the API is the services --json, the page and uPlot come from the package', async () => {
  const roundTrip = (v: unknown): unknown => JSON.parse(JSON.stringify(v));
  assert.deepEqual(JSON.parse((await get(`${open.url}api/status.json`)).body), roundTrip(await status(fx.ctx)));
  assert.deepEqual(JSON.parse((await get(`${open.url}api/cost.json`)).body), roundTrip(costReport(fx.ctx)));
  assert.deepEqual(JSON.parse((await get(`${open.url}api/restore-status.json`)).body), roundTrip(await restoreStatus(fx.ctx)));
  const page = JSON.parse((await get(`${open.url}api/page.json`)).body);
  assert.deepEqual(page.errors, {});
  assert.deepEqual(page.status, roundTrip(await status(fx.ctx)), 'the page data embeds status --json as it is');
  assert.deepEqual(
    Object.fromEntries(page.ages.map((a: { dataset: string; colour: string }) => [a.dataset, a.colour])),
    { 'tank/photos': 'green', 'tank/docs': 'amber', 'tank/mail': 'red' },
    'green below --max-age, amber above it, red after a failed push',
  );
  const last = page.history[page.history.length - 1];
  assert.equal(last.storedBytes, page.status.datasets.reduce((n: number, d: { storedBytes: number }) => n + d.storedBytes, 0), 'the history ends at what is stored now');
  assert.equal(last.monthlyCost, page.status.monthlyCost);

  const html = await get(open.url);
  assert.equal(html.status, 200);
  assert.match(String(html.headers['content-type']), /text\/html/);
  assert.match(String(html.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
  assert.doesNotMatch(html.body, /https?:\/\//, 'the page loads nothing from elsewhere');
  const lib = await get(`${open.url}vendor/uPlot.iife.min.js`);
  assert.equal(lib.status, 200);
  assert.match(lib.body, /uPlot/);
  assert.equal((await get(`${open.url}nothing-here`)).status, 404);
});

test('serve: read-only, and on loopback the Host header must be loopback (DNS rebinding)', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const r = await get(`${open.url}api/status.json`, { method });
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.allow, 'GET, HEAD');
  }
  assert.equal((await get(open.url, { method: 'HEAD' })).status, 200);
  const port = new URL(open.url).port;
  assert.equal((await get(open.url, { headers: { host: `evil.example:${port}` } })).status, 403);
  assert.equal((await get(open.url, { headers: { host: `localhost:${port}` } })).status, 200);
  assert.equal((await get(open.url, { headers: { host: `[::1]:${port}` } })).status, 200);
  // Another site making the browser ask (an <img> or <script> pointing here): its Host is loopback, so Sec-Fetch-Site and Origin decide.
  assert.equal((await get(`${open.url}api/page.json`, { headers: { 'sec-fetch-site': 'cross-site' } })).status, 403);
  assert.equal((await get(`${open.url}api/page.json`, { headers: { 'sec-fetch-site': 'same-site' } })).status, 403, 'another port of the same host is another origin');
  assert.equal((await get(`${open.url}api/page.json`, { headers: { origin: 'http://evil.example' } })).status, 403);
  assert.equal((await get(`${open.url}api/page.json`, { headers: { 'sec-fetch-site': 'same-origin', origin: open.url.replace(/\/$/, '') } })).status, 200);
  assert.equal((await get(open.url, { headers: { 'sec-fetch-site': 'none' } })).status, 200, 'a typed address or a bookmark');
});

test('serve: with a token, none or a wrong one is 401; Bearer works; ?token= sets an HttpOnly Strict cookie and redirects without it', async () => {
  const none = await get(`${guarded.url}api/page.json`);
  assert.equal(none.status, 401);
  assert.match(String(none.headers['www-authenticate']), /^Bearer /);
  assert.equal((await get(`${guarded.url}api/page.json`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status, 401);
  assert.equal((await get(`${guarded.url}api/page.json`, { headers: { authorization: `Bearer ${TOKEN}x` } })).status, 401, 'a longer token is not a match');
  assert.equal((await get(`${guarded.url}api/page.json`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.equal((await get(`${guarded.url}?token=nope`)).status, 401);
  const r = await get(`${guarded.url}?token=${TOKEN}&x=1`);
  assert.equal(r.status, 303);
  assert.equal(r.headers.location, '/?x=1', 'the token leaves the URL');
  const cookie = String(r.headers['set-cookie']);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const jar = cookie.split(';')[0]!;
  assert.ok(!cookie.includes(TOKEN) && !cookie.includes(encodeURIComponent(TOKEN)), 'the cookie, sent to every port of this host, does not carry the token');
  assert.equal((await get(`${guarded.url}api/page.json`, { headers: { cookie: jar } })).status, 200);
  assert.equal((await get(`${guarded.url}api/page.json`, { headers: { cookie: `zbk_token=${encodeURIComponent(TOKEN)}` } })).status, 401, 'the token itself is not the cookie');
  const u = new URL(guarded.url);
  const slashes = await new Promise<Reply>((resolve, reject) => {
    // The path as written (a URL string would be normalised first): "/.//evil.example/x".
    const req = request({ host: u.hostname, port: u.port, path: `/.//evil.example/x?token=${TOKEN}` }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(slashes.status, 303);
  assert.equal(slashes.headers.location, '/evil.example/x', 'never a redirect to another host (//host)');
  assert.equal((await get(`${guarded.url}api/page.json`, { headers: { cookie: 'zbk_token=forged-forged-forged-forged' } })).status, 401);
});

test('serve: addresses and tokens are checked before listening; a port in use is exit 1', async () => {
  assert.throws(() => parseListen('nonsense'), (e: unknown) => e instanceof UsageError && e.exitCode === 2);
  assert.throws(() => parseListen('127.0.0.1:70000'), UsageError);
  assert.throws(() => parseListen('example.com:80'), UsageError);
  assert.deepEqual(parseListen('[::1]:8470'), { host: '::1', port: 8470, loopback: true });
  assert.deepEqual(parseListen('8470'), { host: '127.0.0.1', port: 8470, loopback: true });
  assert.throws(() => assertListenAllowed(parseListen('0.0.0.0:8470'), null), (e: unknown) => e instanceof UsageError && e.code === 'TOKEN_REQUIRED');
  assert.doesNotThrow(() => assertListenAllowed(parseListen('0.0.0.0:8470'), TOKEN));
  assert.throws(() => loadToken(join(fx.dir, 'no-such-file'), {}), (e: unknown) => e instanceof ConfigError && e.exitCode === 3);
  const short = join(fx.dir, 'short-token');
  writeFileSync(short, 'abc\n');
  assert.throws(() => loadToken(short, {}), ConfigError);
  const good = join(fx.dir, 'token');
  writeFileSync(good, `${TOKEN}\n`, { mode: 0o600 });
  assert.equal(loadToken(good, {}), TOKEN);
  assert.equal(tokenFileWarning(good), null);
  chmodSync(good, 0o640);
  assert.match(tokenFileWarning(good) ?? '', /readable by its group \(mode 0640\): chmod 600 /);
  chmodSync(good, 0o644);
  assert.match(tokenFileWarning(good) ?? '', /readable by every user \(mode 0644\)/);
  assert.ok(!(tokenFileWarning(good) ?? '').includes(TOKEN), 'the warning never quotes the token');
  assert.equal(loadToken(undefined, { ZBK_SERVE_TOKEN: TOKEN }), TOKEN);
  assert.equal(loadToken(undefined, {}), null);
  const port = Number(new URL(open.url).port);
  await assert.rejects(startServer(fx.ctx, { listen: parseListen(`127.0.0.1:${port}`), token: null, maxAgeSeconds: 60 }), (e: unknown) => e instanceof OperationError && e.exitCode === 1);
});

test('zbk serve: exit 2 for a public address without a token, 3 for an unreadable token file; --json prints the URL, SIGTERM stops it', async () => {
  const env = { ZBK_CONFIG: fx.configPath };
  const noToken = await runZbk(['serve', '--listen', '0.0.0.0:0'], env);
  assert.equal(noToken.code, 2, noToken.stderr);
  assert.match(noToken.stderr, /needs a token/);
  const badFile = await runZbk(['serve', '--token-file', join(fx.dir, 'missing')], env);
  assert.equal(badFile.code, 3, badFile.stderr);
  const run = startZbk(['serve', '--listen', '127.0.0.1:0', '--json'], env);
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      run.child.stdout!.on('data', (d: Buffer) => {
        out += d.toString('utf8');
        if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]!) as { url: string }).url);
      });
      void run.done.then((r) => reject(new Error(`zbk serve exited ${r.code}: ${r.stderr}`)));
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    // The CLI's own context (file:// store from the config) serves the same figures.
    const st = JSON.parse((await get(`${url}api/status.json`)).body);
    assert.deepEqual(st.datasets.map((d: { dataset: string }) => d.dataset).sort(), ['tank/docs', 'tank/mail', 'tank/photos']);
  } finally {
    run.child.kill('SIGTERM');
  }
  const done = await run.done;
  assert.equal(done.code, 0, done.stderr);
  assert.equal(done.stdout.trim().split('\n').length, 1, 'the JSON object once');
});
