import { Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import { parseDuration } from '../src/services/check.js';
import { DEFAULT_LISTEN, assertListenAllowed, loadToken, parseListen, tokenFileWarning } from '../src/services/serve/auth.js';
import { startServer } from '../src/services/serve/server.js';

export interface ServeResult {
  url: string;
}

export default class Serve extends BaseCommand {
  static override summary = 'Serve a read-only status page: chains and last-push age, stored bytes and cost over time, the restore timeline, the providers compared, recent pushes, failures and hook results.';
  static override description = `The page shows the figures of "status --json", "cost --json", "restore status --json" and "cost compare --json" (also served as /api/status.json, /api/cost.json, /api/restore-status.json, /api/cost-compare.json; everything the page needs: /api/page.json). Its files and the chart library (uPlot) come from the installed package: nothing is loaded from elsewhere. Only GET and HEAD are answered. Needs no passphrase. Runs until SIGINT or SIGTERM.

On loopback (the default, ${DEFAULT_LISTEN}) no token is needed, and the Host header must be localhost, 127.0.0.1 or [::1]. Any other address needs a token (--token-file, or $ZBK_SERVE_TOKEN): open the URL once with ?token=… (it becomes an HttpOnly cookie and leaves the address bar), or send "Authorization: Bearer …".

The last-push age is green below --max-age, amber up to twice it, red beyond it, or when a dataset was never pushed, its chain is broken or its last push failed.

Exit codes: 0 stopped by a signal, 1 cannot listen (the port is in use), 2 bad --listen or a non-loopback address without a token, 3 config or an unreadable token file.`;
  static override examples = [
    '<%= config.bin %> serve   # then open http://127.0.0.1:8470/',
    'ssh -L 8470:127.0.0.1:8470 backup-host zbk serve   # from your machine, over ssh',
    '<%= config.bin %> serve --listen 0.0.0.0:8470 --token-file /etc/zbk/serve-token',
  ];
  static override flags = {
    listen: Flags.string({ description: 'Address to listen on: PORT, HOST:PORT or [IPv6]:PORT (port 0: any free one).', default: DEFAULT_LISTEN, helpValue: 'HOST:PORT' }),
    'token-file': Flags.string({ description: 'File whose first line is the access token (default: $ZBK_SERVE_TOKEN); needed for a non-loopback address.', helpValue: 'PATH' }),
    'max-age': Flags.string({ description: 'Last-push age shown amber from this, red from twice it (as zbk check --max-age).', default: '26h' }),
  };

  async run(): Promise<ServeResult> {
    const { flags } = await this.parse(Serve);
    // Usage and token problems before the config, so they are reported as such.
    const listen = parseListen(flags.listen);
    const maxAgeSeconds = parseDuration(flags['max-age']);
    const token = loadToken(flags['token-file']);
    assertListenAllowed(listen, token);
    const loose = flags['token-file'] === undefined ? null : tokenFileWarning(flags['token-file']);
    if (loose) this.note(`warning: ${loose}`);
    const ctx = this.context(flags);
    // An access line per request on stderr (the journal under systemd): method, path without the query, status.
    const running = await startServer(ctx, { listen, token, maxAgeSeconds, onRequest: (line) => this.note(line) });
    this.say(`serving the status page at ${running.url}${token ? ' (token required)' : ''}; Ctrl-C stops it`);
    // --json: the one object, printed as soon as the page can be loaded (not at exit).
    if (this.jsonEnabled()) process.stdout.write(JSON.stringify({ url: running.url }) + '\n');
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void running.close().then(resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    // The JSON was printed above; oclif would print the returned value a second time.
    if (this.jsonEnabled()) this.exit(0);
    return { url: running.url };
  }
}
