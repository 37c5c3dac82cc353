import { Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import type { ServiceContext } from '../src/services/context.js';
import { collectMetrics, failedMetrics, type MetricsResult } from '../src/services/metrics.js';

export default class Metrics extends BaseCommand {
  static override summary = 'Print Prometheus metrics (text format 0.0.4), or write them for node_exporter\'s textfile collector.';
  static override description = `Per dataset: last successful and last failed push, newest pushed snapshot, stored bytes and objects, chain length and health, monthly cost, verify coverage; per repository: in-flight and orphan uploads, cost, active restores' progress; and zbk_up. The values are those of "status --json", "cost --json", "restore status --json" and "check --json". Reads the local manifest and the store's list of unfinished multipart uploads (as "zbk status"); needs no passphrase. With [hooks] include_names = false the dataset label is dataset-<n>, as in webhooks. Every metric is described in docs/OPERATIONS.md, "Metrics".

--textfile DIR writes DIR/zbk.prom atomically (temporary file in DIR, fsync, rename; mode 0644): a failed write leaves the previous file as it was. "zbk schedule --metrics-textfile DIR" refreshes it after every push.

When a source cannot be read (the store, the manifest), the others are still printed (or written), with zbk_up 0 and zbk_collector_success{collector} 0, and the exit code is that source's. A config that cannot be loaded writes zbk_up 0 to the textfile too.

Exit codes: 0 ok, 1 the textfile cannot be written, 2 bad flags or no such directory, 3 config, 5 store, 9 manifest.`;
  static override examples = ['<%= config.bin %> metrics', '<%= config.bin %> metrics --textfile /var/lib/prometheus/node-exporter'];
  static override flags = {
    textfile: Flags.string({ description: 'Write DIR/zbk.prom atomically (node_exporter --collector.textfile.directory) instead of printing.', helpValue: 'DIR' }),
  };

  async run(): Promise<MetricsResult> {
    const { flags } = await this.parse(Metrics);
    const opts = { version: this.config.version, ...(flags.textfile !== undefined ? { textfileDir: flags.textfile } : {}) };
    let ctx: ServiceContext;
    try {
      ctx = this.context(flags);
    } catch (err) {
      // The config is what failed: still tell the collector (zbk_up 0), then fail as any command does.
      if (opts.textfileDir !== undefined) {
        try {
          failedMetrics(err, opts);
        } catch {
          // the directory's own problem is reported by a run with a working config
        }
      }
      throw err;
    }
    const result = await collectMetrics(ctx, opts);
    if (result.textfile === null && !this.jsonEnabled()) process.stdout.write(result.text);
    const why = new Map<string, string[]>();
    for (const c of result.collectors) if (c.error) why.set(c.error.message, [...(why.get(c.error.message) ?? []), c.collector]);
    for (const [message, sources] of why) this.note(`warning: zbk_up 0: ${sources.join(', ')} could not be read: ${message}`);
    const failed = result.collectors.find((c) => c.error);
    if (failed?.error) process.exitCode = failed.error.exitCode;
    return result;
  }
}
