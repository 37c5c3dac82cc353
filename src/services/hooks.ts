/**
 * User hooks around a push: pre/post commands (argument arrays, no shell)
 * and success/failure webhooks in the formats of healthchecks.io, Uptime Kuma
 * (push monitors) and ntfy. Each has a timeout. A failing hook is reported
 * as a warning and never hides or changes the push result. Webhook URLs are
 * secrets (they authenticate the sender): they are never logged; errors
 * mention only the host.
 */
import { spawn } from 'node:child_process';
import { childEnvironment } from '../child-env.js';
import type { HookConfig } from '../config/config.js';

export interface HookOutcome {
  ok: boolean;
  /** What ran, without secrets. */
  what: string;
  detail?: string;
}

/** Run a hook command with a timeout. Never throws. */
export function runHookCommand(argv: string[], env: Record<string, string>, timeoutSeconds: number): Promise<HookOutcome> {
  const what = `hook ${argv[0] ?? ''}`;
  return new Promise((resolve) => {
    let stderr = '';
    let settled = false;
    const finish = (o: HookOutcome): void => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    let child;
    try {
      child = spawn(argv[0]!, argv.slice(1), { env: { ...childEnvironment(process.env), ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      finish({ ok: false, what, detail: (err as Error).message });
      return;
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ ok: false, what, detail: `timed out after ${timeoutSeconds}s` });
    }, timeoutSeconds * 1000);
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-500);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      finish({ ok: false, what, detail: err.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) finish({ ok: true, what });
      else finish({ ok: false, what, detail: `exit ${code ?? signal}${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}` });
    });
  });
}

export interface WebhookRequest {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

/** Build the request a webhook service expects for a success or failure. Pure. */
export function webhookRequest(hooks: HookConfig, ok: boolean, message: string): WebhookRequest | null {
  const text = message.slice(0, 1000);
  switch (hooks.webhookFormat) {
    case 'healthchecks': {
      // healthchecks.io: ping URL for success, the same URL + "/fail" for failure, body is the log.
      const base = ok ? hooks.onSuccess : hooks.onFailure ?? (hooks.onSuccess ? healthchecksFailUrl(hooks.onSuccess) : undefined);
      return base ? { url: base, method: 'POST', headers: { 'content-type': 'text/plain' }, body: text } : null;
    }
    case 'uptime-kuma': {
      // Uptime Kuma push monitor: GET with status=up|down and msg.
      const base = ok ? hooks.onSuccess : hooks.onFailure ?? hooks.onSuccess;
      if (!base) return null;
      const u = new URL(base);
      u.searchParams.set('status', ok ? 'up' : 'down');
      u.searchParams.set('msg', text.slice(0, 200));
      return { url: u.toString(), method: 'GET', headers: {} };
    }
    case 'ntfy': {
      // ntfy: POST the message to the topic URL; title, priority and tags as headers.
      const base = ok ? hooks.onSuccess : hooks.onFailure ?? hooks.onSuccess;
      if (!base) return null;
      return {
        url: base,
        method: 'POST',
        headers: { title: ok ? 'zbk backup ok' : 'zbk backup FAILED', priority: ok ? 'default' : 'high', tags: ok ? 'white_check_mark' : 'warning' },
        body: text,
      };
    }
  }
}

/** healthchecks.io's failure endpoint of a ping URL: "/fail" appended to the path (a query, e.g. ?create=1, stays a query). */
export function healthchecksFailUrl(pingUrl: string): string {
  const u = new URL(pingUrl);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/fail`;
  return u.toString();
}

/** Host of a URL, for messages (the rest of a webhook URL is a secret). */
export function redactUrl(url: string): string {
  try {
    return new URL(url).host || 'webhook';
  } catch {
    return 'webhook';
  }
}

/** Variables whose values must never appear in a message sent out (a hook's env, a webhook body). */
const SECRET_VALUE_ENV = ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN', 'ZBK_PASSPHRASE'];

/**
 * A message made safe to send to a hook or webhook: the webhook URLs become
 * their host, user:password@ in any URL and every URL's query (presigned
 * URLs carry signatures there) are removed, AWS access key ids are cut to
 * their prefix, and the values of zbk's secret environment variables are
 * masked. zbk's own messages never hold secrets; this is the second line of
 * defence for text that comes from elsewhere (an SDK error, a zfs message).
 */
export function redactSecrets(message: string, hooks?: Pick<HookConfig, 'onSuccess' | 'onFailure'>, env: NodeJS.ProcessEnv = process.env): string {
  let out = message;
  const urls = [hooks?.onSuccess, hooks?.onFailure].filter((u): u is string => typeof u === 'string' && u.length > 0);
  for (const u of urls) {
    out = out.split(u).join(redactUrl(u));
    try {
      const fail = healthchecksFailUrl(u);
      out = out.split(fail).join(redactUrl(fail));
    } catch {
      // not a URL: nothing more to mask
    }
  }
  for (const k of SECRET_VALUE_ENV) {
    const v = env[k];
    if (v && v.length >= 4) out = out.split(v).join('***');
  }
  return out
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1')
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s?#]*)\?[^\s#]*/gi, '$1?…')
    .replace(/\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, '$1…');
}

/**
 * `message` with dataset and snapshot names left out: each of `datasets`
 * (longest first, so `tank/a/b` is not read as `tank/a` + `/b`) becomes
 * `dataset-<n>`, numbered in the order given, and every `@name` becomes
 * `@<snapshot>`. For `[hooks] include_names = false`.
 */
export function withoutNames(message: string, datasets: readonly string[]): string {
  const order = [...new Set(datasets.filter((d) => d !== ''))];
  let out = message;
  for (const name of [...order].sort((a, b) => b.length - a.length)) out = out.split(name).join(`dataset-${order.indexOf(name) + 1}`);
  return out.replace(/@[^\s'"(),;]+/g, '@<snapshot>');
}

/**
 * Send the success/failure webhook, if configured. Never throws. The message
 * is redacted (`redactSecrets`), and without names when `includeNames` is
 * false (`datasets`: every dataset name the message may hold).
 */
export async function sendWebhook(hooks: HookConfig, ok: boolean, message: string, datasets: readonly string[] = []): Promise<HookOutcome | null> {
  let req: WebhookRequest | null;
  try {
    const text = redactSecrets(message, hooks);
    req = webhookRequest(hooks, ok, hooks.includeNames ? text : withoutNames(text, datasets));
  } catch {
    // An unparsable URL (checked by the config, but a hook must never turn a result around).
    return { ok: false, what: 'webhook', detail: 'the webhook URL is not a valid URL' };
  }
  if (!req) return null;
  const what = `webhook to ${redactUrl(req.url)}`;
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: AbortSignal.timeout(hooks.timeoutSeconds * 1000),
    });
    return res.ok ? { ok: true, what } : { ok: false, what, detail: `HTTP ${res.status}` };
  } catch (err) {
    const name = (err as Error).name === 'TimeoutError' ? `timed out after ${hooks.timeoutSeconds}s` : 'request failed';
    return { ok: false, what, detail: name };
  }
}
