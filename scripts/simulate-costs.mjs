#!/usr/bin/env node
// Replays synthetic 10-year workloads (src/planner/simulate.ts) under each
// consolidation policy and prints Markdown tables (see docs/COSTS.md).
// Needs a build first: npx tsc -p tsconfig.json && node scripts/simulate-costs.mjs
import { DEFAULT_POLICIES, DEFAULT_WORKLOAD, simulate, simulationTable } from '../dist/src/planner/simulate.js';
import { priceTable } from '../dist/src/cost/prices.js';

const prices = priceTable('us-east-1', {});
// Fixed start date: the simulation must be deterministic.
const start = new Date('2027-01-01T00:00:00Z');
const workloads = [
  DEFAULT_WORKLOAD,
  // Append-only photo library: nothing is ever rewritten.
  { ...DEFAULT_WORKLOAD, churnPerMonth: 0 },
];
console.log(`prices ${prices.region} as of ${prices.asOf}`);
for (const w of workloads) {
  console.log(
    `\nworkload: ${w.initialGB} GB + ${w.growthGBPerMonth} GB/month, ${w.churnPerMonth * 100}% churn/month, ` +
      `${w.pushesPerMonth} pushes/month, ${w.months} months\n`,
  );
  console.log(simulationTable(DEFAULT_POLICIES.map((p) => simulate(w, p, prices, start))));
}

// The provider comparison (docs/COSTS.md "Comparing providers"): a typical
// 2 TB photo library growing 20 GB/month, append-only, on every profile,
// each with its own prices, minimum duration and part limit.
const { simulateCosts } = await import('../dist/src/services/cost-simulate.js');
const { PROVIDER_NAMES } = await import('../dist/src/cost/providers/index.js');
const $ = (x) => `$${x.toFixed(2)}`;
for (const photo of [
  { initialGB: 2000, growthGBPerMonth: 20, churnPerMonth: 0 },
  // The same library with 1 % of it rewritten a month (edits, re-imports).
  { initialGB: 2000, growthGBPerMonth: 20, churnPerMonth: 0.01 },
]) {
console.log(`\nproviders: ${photo.initialGB} GB + ${photo.growthGBPerMonth} GB/month, ${photo.churnPerMonth * 100}% churn/month, 30 pushes/month, 120 months, each profile's list prices (EUR at its stated rate)\n`);
console.log('| provider | zbk 10-y storage + requests | early del. | restore (free allowance) | months | total + restore | cheapest other policy (total + restore) |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const provider of PROVIDER_NAMES) {
  const r = simulateCosts({ provider, workload: photo, start });
  const zbk = r.results.find((x) => x.policy.startsWith('zbk'));
  const others = r.results.filter((x) => x !== zbk).sort((a, b) => a.total + a.restoreCost - (b.total + b.restoreCost));
  const best = others[0];
  console.log(
    `| ${provider} | ${$(zbk.total)} | ${$(zbk.earlyDeletion)} | ${$(zbk.restoreCost)} | ${zbk.restoreMonths} | ${$(zbk.total + zbk.restoreCost)} | ${best.policy}: ${$(best.total + best.restoreCost)} |`,
  );
}
}
