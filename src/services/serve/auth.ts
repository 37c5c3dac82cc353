/**
 * `zbk serve`'s access rules, pure so they are tested without a socket:
 * where it may listen, which token it needs, and whether a request passes.
 *
 * - Loopback (127.0.0.0/8, ::1, localhost) needs no token, but the Host
 *   header must name loopback too: a page on another site that rebinds its
 *   own name to 127.0.0.1 (DNS rebinding) sends its own name as Host.
 * - Any other address needs a token: `Authorization: Bearer <t>`, or the
 *   cookie that `?token=<t>` sets once (so the token leaves the address bar
 *   and the history after the first load).
 * - Tokens are compared as SHA-256 digests with timingSafeEqual: equal
 *   length, constant time, whatever the guess.
 * - The cookie holds a value derived from the token, not the token: browsers
 *   send a host's cookies to every port of it, so another web service on the
 *   same machine sees the cookie, and must not learn the token from it.
 * - A request another site makes the browser send (an <img> or <script>
 *   pointing here) is refused by its Sec-Fetch-Site or Origin header: it
 *   could not read the answer, but each one would rebuild the page, which
 *   asks the store for its unfinished uploads.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError, UsageError } from '../../errors.js';

export const DEFAULT_LISTEN = '127.0.0.1:8470';
export const COOKIE = 'zbk_token';

export interface ListenAddress {
  host: string;
  port: number;
  loopback: boolean;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/** `PORT`, `HOST:PORT` or `[IPv6]:PORT`; port 0 picks a free one. */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen must be PORT, HOST:PORT or [IPv6]:PORT, got ${JSON.stringify(text)}`, 'BAD_LISTEN');
  const host = (m[1] ?? '127.0.0.1').replace(/^\[|\]$/g, '');
  if (host !== 'localhost' && isIP(host) === 0) throw new UsageError(`--listen needs an IP address or localhost, got ${JSON.stringify(host)}`, 'BAD_LISTEN');
  return { host, port, loopback: isLoopbackHost(host) };
}

/** The token from `--token-file` (first line, trimmed), else $ZBK_SERVE_TOKEN, else null. */
export function loadToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env): string | null {
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read the token file ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'TOKEN_FILE');
    }
    const token = text.split('\n')[0]!.trim();
    if (token.length < 16) throw new ConfigError(`the token in ${tokenFile} is shorter than 16 characters (make one with: openssl rand -hex 32)`, 'TOKEN_FILE');
    return token;
  }
  const fromEnv = env.ZBK_SERVE_TOKEN?.trim();
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.length < 16) throw new ConfigError('ZBK_SERVE_TOKEN is shorter than 16 characters (make one with: openssl rand -hex 32)', 'TOKEN_FILE');
    return fromEnv;
  }
  return null;
}

/**
 * A warning when the token file can be read by its group or by others
 * (anyone who reads it reads the page), else null. Not an error: a token
 * shared with a group may be meant.
 */
export function tokenFileWarning(tokenFile: string): string | null {
  const mode = statSync(tokenFile).mode & 0o777;
  if ((mode & 0o044) === 0) return null;
  return `the token file ${tokenFile} is readable by ${mode & 0o004 ? 'every user' : 'its group'} (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 ${tokenFile}`;
}

/** Refuses a non-loopback address without a token (exit 2). */
export function assertListenAllowed(addr: ListenAddress, token: string | null): void {
  if (!addr.loopback && token === null) {
    throw new UsageError(`listening on ${addr.host} needs a token (--token-file or ZBK_SERVE_TOKEN): without one anybody who can reach it reads the page`, 'TOKEN_REQUIRED');
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function tokenMatches(expected: string, given: string | undefined | null): boolean {
  if (given === undefined || given === null) return false;
  return timingSafeEqual(digest(expected), digest(given));
}

/** The cookie's value for `token`: proves the token was given once, and cannot be turned back into it. */
export function cookieFor(token: string): string {
  return createHmac('sha256', token).update('zbk-serve-cookie').digest('hex');
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export interface RequestFacts {
  method: string;
  url: URL;
  host: string | undefined;
  authorization: string | undefined;
  cookie: string | undefined;
  /** The browser's Sec-Fetch-Site header: `same-origin` or `none` (typed address, bookmark) pass. */
  secFetchSite?: string | undefined;
  /** The Origin header, when the browser sent one. */
  origin?: string | undefined;
}

export type Decision =
  | { kind: 'ok' }
  | { kind: 'redirect'; location: string; setCookie: string }
  | { kind: 'deny'; status: 401 | 403 | 405; message: string };

/** Whether a request may be answered, and how. */
export function authorize(req: RequestFacts, addr: ListenAddress, token: string | null): Decision {
  if (req.method !== 'GET' && req.method !== 'HEAD') return { kind: 'deny', status: 405, message: 'read-only: only GET and HEAD' };
  if (addr.loopback) {
    const hostname = (req.host ?? '').replace(/:\d+$/, '');
    if (!isLoopbackHost(hostname)) return { kind: 'deny', status: 403, message: 'the Host header must be localhost, 127.0.0.1 or [::1]' };
  }
  const site = req.secFetchSite?.toLowerCase();
  const crossSite = (site !== undefined && site !== 'same-origin' && site !== 'none') || (req.origin !== undefined && req.origin !== `http://${req.host ?? ''}`);
  if (crossSite) return { kind: 'deny', status: 403, message: 'requests made by another site are refused' };
  if (token === null) return { kind: 'ok' };
  const query = req.url.searchParams.get('token');
  if (query !== null) {
    if (!tokenMatches(token, query)) return { kind: 'deny', status: 401, message: 'wrong token' };
    const clean = new URL(req.url);
    clean.searchParams.delete('token');
    // One leading slash: "//evil.example/x" would be a redirect to another host.
    const location = `/${clean.pathname.replace(/^\/+/, '')}${clean.search}`;
    // HttpOnly: the page's script cannot read it; Strict: no other site's request carries it.
    return { kind: 'redirect', location, setCookie: `${COOKIE}=${cookieFor(token)}; HttpOnly; SameSite=Strict; Path=/` };
  }
  const bearer = /^Bearer\s+(.+)$/i.exec(req.authorization ?? '')?.[1]?.trim();
  if (bearer !== undefined ? tokenMatches(token, bearer) : tokenMatches(cookieFor(token), cookieValue(req.cookie, COOKIE))) return { kind: 'ok' };
  return { kind: 'deny', status: 401, message: 'a token is needed: open the URL with ?token=… once, or send Authorization: Bearer …' };
}
