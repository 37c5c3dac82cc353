import { Flags } from '@oclif/core';
import { BaseCommand } from '../../src/cli/base-command.js';
import { DEFAULT_PROVIDER, isProviderName, unknownProviderMessage } from '../../src/cost/providers/index.js';
import { ConfigError, UsageError } from '../../src/errors.js';
import { clockFromEnv } from '../../src/services/consolidate/clock.js';
import { simulateCosts, type SimulateResult } from '../../src/services/cost-simulate.js';

export default class CostSimulate extends BaseCommand {
  static override summary = 'Compare consolidation policies over years for a workload (the docs/COSTS.md table).';
  static override description = `Deterministic simulation (src/planner/simulate.ts): a library of --initial-gb growing --growth-gb per month with --churn of it rewritten monthly, pushed daily; for each policy the storage, request and early-deletion cost over --months, and what restoring the latest snapshot would cost at the end. Uses the configured [prices] when a config exists, else the default table. Spends nothing.

Exit codes: 0 ok, 2 bad flags (an unknown --provider among them), 3 config.`;
  static override examples = ['<%= config.bin %> cost simulate', '<%= config.bin %> cost simulate --initial-gb 2000 --growth-gb 50 --months 60'];
  static override flags = {
    months: Flags.integer({ description: 'Months to simulate (default 120).' }),
    'initial-gb': Flags.integer({ description: 'Library size at the start, GB (default 500).' }),
    'growth-gb': Flags.integer({ description: 'GB added per month (default 10).' }),
    churn: Flags.string({ description: 'Fraction of the library rewritten per month (default 0.01).' }),
    provider: Flags.string({ description: 'Price with this provider profile (default: the config\'s [store] provider, else aws-deep-archive; see "zbk init --help").', helpValue: '<name>' }),
  };

  async run(): Promise<SimulateResult> {
    const { flags } = await this.parse(CostSimulate);
    let provider: string | undefined;
    let region: string | undefined;
    let prices: Record<string, number> | undefined;
    try {
      const config = this.loadConfig(flags);
      // The config's region and [prices] are for its own provider; another one is priced as its profile states.
      if (flags.provider === undefined || flags.provider === (config.store.provider ?? DEFAULT_PROVIDER)) {
        provider = config.store.provider;
        region = config.store.region;
        prices = config.prices;
      }
    } catch (err) {
      // No config yet is fine (default prices); a broken one is not.
      if (!(err instanceof ConfigError) || flags.config) throw err;
    }
    if (flags.provider !== undefined) {
      if (!isProviderName(flags.provider)) throw new UsageError(unknownProviderMessage(flags.provider));
      provider = flags.provider;
    }
    const churn = flags.churn === undefined ? undefined : Number(flags.churn);
    const r = simulateCosts({
      start: clockFromEnv()(),
      ...(provider === undefined ? {} : { provider }),
      region,
      prices,
      workload: {
        ...(flags.months !== undefined ? { months: flags.months } : {}),
        ...(flags['initial-gb'] !== undefined ? { initialGB: flags['initial-gb'] } : {}),
        ...(flags['growth-gb'] !== undefined ? { growthGBPerMonth: flags['growth-gb'] } : {}),
        ...(churn !== undefined ? { churnPerMonth: churn } : {}),
      },
    });
    const w = r.workload;
    this.say(`${r.provider}: ${w.months} months, ${w.initialGB} GB growing ${w.growthGBPerMonth} GB/month, churn ${w.churnPerMonth}/month, prices as of ${r.priceTableDate}\n`);
    this.say(r.table);
    for (const warning of r.warnings) this.note(`warning: ${warning}`);
    return r;
  }
}
