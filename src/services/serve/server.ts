/**
 * `zbk serve`: a read-only status page over HTTP. The page is static files
 * shipped in the package (./static, copied next to this module by the
 * build) plus uPlot from node_modules: nothing is built at install and no
 * request leaves the machine (no CDN). Its figures come from /api/*.json,
 * which are the services' --json results (./data.ts).
 *
 * Access rules: ./auth.ts. Secrets (the token) are never logged: only the
 * method, path (without the query) and status are.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { OperationError } from '../../errors.js';
import type { ServiceContext } from '../context.js';
import { assertListenAllowed, authorize, type ListenAddress } from './auth.js';
import { pageData } from './data.js';
import { costReport } from '../cost.js';
import { costCompare } from '../cost-compare.js';
import { restoreStatus } from '../restore/status.js';
import { status } from '../status.js';

export interface ServeOptions {
  listen: ListenAddress;
  token: string | null;
  maxAgeSeconds: number;
  /** One line per request (method, path, status); never the query or headers. */
  onRequest?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

interface Asset {
  file: string;
  type: string;
}

const staticDir = fileURLToPath(new URL('./static/', import.meta.url));
// uPlot has no "exports" map: resolving a file inside it works installed or from a checkout.
const uplot = (f: string): string => createRequire(import.meta.url).resolve(`uplot/dist/${f}`);

const ASSETS: Record<string, () => Asset> = {
  '/': () => ({ file: `${staticDir}index.html`, type: 'text/html; charset=utf-8' }),
  '/app.js': () => ({ file: `${staticDir}app.js`, type: 'text/javascript; charset=utf-8' }),
  '/app.css': () => ({ file: `${staticDir}app.css`, type: 'text/css; charset=utf-8' }),
  // Without one the browser asks for /favicon.ico and logs the 404 as a page error.
  '/favicon.svg': () => ({ file: `${staticDir}favicon.svg`, type: 'image/svg+xml' }),
  '/vendor/uPlot.iife.min.js': () => ({ file: uplot('uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' }),
  '/vendor/uPlot.min.css': () => ({ file: uplot('uPlot.min.css'), type: 'text/css; charset=utf-8' }),
};

const HEADERS = {
  // Only this origin's files: no inline script, nothing fetched from elsewhere.
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

function send(res: ServerResponse, code: number, type: string, body: string | Buffer, head: boolean, extra: Record<string, string> = {}): void {
  res.writeHead(code, { ...HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(head ? undefined : body);
}

function json(res: ServerResponse, code: number, value: unknown, head: boolean): void {
  send(res, code, 'application/json; charset=utf-8', JSON.stringify(value, null, 2) + '\n', head);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function route(ctx: ServiceContext, opts: ServeOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // Appended, not resolved: a request line of "//host/x" is a path here, not another host.
  const url = new URL(`http://zbk.invalid${req.url?.startsWith('/') ? req.url : '/'}`);
  const facts = {
    method: req.method ?? 'GET',
    url,
    host: req.headers.host,
    authorization: req.headers.authorization,
    cookie: req.headers.cookie,
    secFetchSite: header(req, 'sec-fetch-site'),
    origin: header(req, 'origin'),
  };
  const decision = authorize(facts, opts.listen, opts.token);
  const head = req.method === 'HEAD';
  if (decision.kind === 'deny') {
    const extra: Record<string, string> = decision.status === 405 ? { allow: 'GET, HEAD' } : decision.status === 401 ? { 'www-authenticate': 'Bearer realm="zbk"' } : {};
    send(res, decision.status, 'text/plain; charset=utf-8', `${decision.message}\n`, head, extra);
    return;
  }
  if (decision.kind === 'redirect') {
    res.writeHead(303, { ...HEADERS, location: decision.location, 'set-cookie': decision.setCookie, 'content-length': 0 });
    res.end();
    return;
  }
  // The same objects `zbk status --json`, `zbk cost --json`, `zbk restore status --json` and `zbk cost compare --json` print.
  const api: Record<string, () => Promise<unknown>> = {
    '/api/page.json': () => pageData(ctx, opts.maxAgeSeconds),
    '/api/status.json': () => status(ctx),
    '/api/cost.json': async () => costReport(ctx),
    '/api/restore-status.json': () => restoreStatus(ctx),
    '/api/cost-compare.json': async () => costCompare(ctx),
  };
  const handler = api[url.pathname];
  if (handler) {
    try {
      json(res, 200, await handler(), head);
    } catch (err) {
      json(res, 500, { error: { message: err instanceof Error ? err.message : String(err) } }, head);
    }
    return;
  }
  const asset = ASSETS[url.pathname];
  if (!asset) {
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n', head);
    return;
  }
  const a = asset();
  send(res, 200, a.type, readFileSync(a.file), head);
}

/** Listen on `opts.listen`; resolves once listening. EADDRINUSE and the like: OperationError (exit 1). */
export async function startServer(ctx: ServiceContext, opts: ServeOptions): Promise<RunningServer> {
  assertListenAllowed(opts.listen, opts.token);
  const server = createServer((req, res) => {
    route(ctx, opts, req, res)
      .catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `${err instanceof Error ? err.message : String(err)}\n`, false);
        else res.destroy();
      })
      .finally(() => opts.onRequest?.(`${req.method} ${(req.url ?? '/').split('?')[0]} ${res.statusCode}`));
  });
  // Slow or idle clients (reachable off loopback before any token is checked) cannot hold sockets for minutes.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const what = err.code === 'EADDRINUSE' ? 'is in use' : err.code === 'EACCES' ? 'is not allowed' : `failed (${err.code ?? err.message})`;
      reject(new OperationError(`listening on ${opts.listen.host}:${opts.listen.port} ${what}`, 'LISTEN_FAILED'));
    });
    server.listen(opts.listen.port, opts.listen.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.listen.port;
  const host = opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host;
  return {
    url: `http://${host}:${port}/`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
