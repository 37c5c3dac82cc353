import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { HookConfig } from '../../src/config/config.js';
import { runHookCommand, sendWebhook, webhookRequest } from '../../src/services/hooks.js';

const base: HookConfig = { timeoutSeconds: 5, webhookFormat: 'healthchecks', includeNames: true };

test('healthchecks: success pings the URL, failure pings URL/fail unless a failure URL is set', () => {
  const hooks = { ...base, onSuccess: 'https://hc-ping.com/SECRET-UUID' };
  assert.equal(webhookRequest(hooks, true, 'ok')?.url, 'https://hc-ping.com/SECRET-UUID');
  assert.equal(webhookRequest(hooks, false, 'bad')?.url, 'https://hc-ping.com/SECRET-UUID/fail');
  assert.equal(webhookRequest({ ...hooks, onFailure: 'https://x/fail-here' }, false, 'bad')?.url, 'https://x/fail-here');
  assert.equal(webhookRequest(base, true, 'ok'), null, 'no URL, no request');
  // A query (?create=1, ?rid=…) stays a query: "/fail" goes on the path, or healthchecks would count it as a success.
  assert.equal(webhookRequest({ ...base, onSuccess: 'https://hc-ping.com/KEY/photos?create=1' }, false, 'bad')?.url, 'https://hc-ping.com/KEY/photos/fail?create=1');
});

test('a webhook URL that does not parse is a failed hook, never an exception that turns a push result around', async () => {
  const r = await sendWebhook({ ...base, webhookFormat: 'uptime-kuma', onSuccess: 'kuma.example/api/push/TOKEN' }, true, 'ok');
  assert.equal(r?.ok, false);
  assert.ok(!JSON.stringify(r).includes('TOKEN'));
});

test('uptime kuma: status and message as query parameters', () => {
  const req = webhookRequest({ ...base, webhookFormat: 'uptime-kuma', onSuccess: 'https://kuma.example/api/push/TOKEN' }, false, 'push failed: disk')!;
  const u = new URL(req.url);
  assert.equal(req.method, 'GET');
  assert.equal(u.searchParams.get('status'), 'down');
  assert.equal(u.searchParams.get('msg'), 'push failed: disk');
});

test('ntfy: message body with title and priority headers', () => {
  const req = webhookRequest({ ...base, webhookFormat: 'ntfy', onSuccess: 'https://ntfy.sh/topic' }, false, 'failed')!;
  assert.equal(req.method, 'POST');
  assert.equal(req.body, 'failed');
  assert.equal(req.headers.priority, 'high');
  assert.match(req.headers.title ?? '', /FAILED/);
});

test('a webhook is delivered; a failing one is reported by host only, never by its secret URL', async (t) => {
  const seen: { url: string; body: string }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', body });
      res.statusCode = req.url?.includes('broken') ? 500 : 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const ok = await sendWebhook({ ...base, onSuccess: `http://127.0.0.1:${port}/ping/SECRET-1` }, true, 'all good');
  assert.deepEqual(ok, { ok: true, what: `webhook to 127.0.0.1:${port}` });
  assert.deepEqual(seen[0], { url: '/ping/SECRET-1', body: 'all good' });
  const bad = await sendWebhook({ ...base, onSuccess: `http://127.0.0.1:${port}/broken/SECRET-2` }, true, 'x');
  assert.equal(bad?.ok, false);
  assert.ok(!JSON.stringify(bad).includes('SECRET-2'), 'the secret part of the URL is not in the report');
});

test('hook commands: success, failure with stderr, and a timeout that kills', async () => {
  assert.deepEqual(await runHookCommand(['true'], {}, 5), { ok: true, what: 'hook true' });
  const failed = await runHookCommand(['sh', '-c', 'echo boom >&2; exit 3'], {}, 5);
  assert.equal(failed.ok, false);
  assert.match(failed.detail ?? '', /exit 3: boom/);
  const env = await runHookCommand(['sh', '-c', 'test "$ZBK_DATASET" = tank/x'], { ZBK_DATASET: 'tank/x' }, 5);
  assert.equal(env.ok, true, 'the hook sees ZBK_DATASET');
  process.env.AWS_SECRET_ACCESS_KEY = 'not-for-hooks';
  try {
    const secrets = await runHookCommand(['sh', '-c', 'test -z "$AWS_SECRET_ACCESS_KEY" && test -n "$PATH"'], {}, 5);
    assert.equal(secrets.ok, true, 'the hook gets PATH but not the AWS secret key');
  } finally {
    delete process.env.AWS_SECRET_ACCESS_KEY;
  }
  const slow = await runHookCommand(['sleep', '30'], {}, 0.3);
  assert.equal(slow.ok, false);
  assert.match(slow.detail ?? '', /timed out/);
  const missing = await runHookCommand(['/nonexistent/hook'], {}, 5);
  assert.equal(missing.ok, false);
});
