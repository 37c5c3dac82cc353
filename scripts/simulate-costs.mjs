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
  // zbk's planner with --timing payback too (the rule before the interval timing), beside the default.
  const policies = [...DEFAULT_POLICIES.slice(0, -1), { kind: 'zbk', horizonMonths: 24, timing: 'payback' }, DEFAULT_POLICIES.at(-1)];
  console.log(simulationTable(policies.map((p) => simulate(w, p, prices, start))));
}

// The provider comparison (docs/COSTS.md "Comparing providers"): a typical
// 2 TB photo library growing 20 GB/month, append-only, on every profile,
// each with its own prices, minimum duration and part limit.
const { simulateCosts } = await import('../dist/src/services/cost-simulate.js');
const { PROVIDER_NAMES } = await import('../dist/src/cost/providers/index.js');
const { FIXED_POLICY_GRID } = await import('../dist/src/planner/simulate.js');
const $ = (x) => `$${x.toFixed(2)}`;
const zbkPolicy = { kind: 'zbk', horizonMonths: 24 };
const paybackPolicy = { kind: 'zbk', horizonMonths: 24, timing: 'payback' };
for (const photo of [
  { initialGB: 2000, growthGBPerMonth: 20, churnPerMonth: 0 },
  // The same library with 1 % of it rewritten a month (edits, re-imports).
  { initialGB: 2000, growthGBPerMonth: 20, churnPerMonth: 0.01 },
]) {
  console.log(`\nproviders: ${photo.initialGB} GB + ${photo.growthGBPerMonth} GB/month, ${photo.churnPerMonth * 100}% churn/month, 30 pushes/month, 120 months, each profile's list prices (EUR at its stated rate)\n`);
  console.log('| provider | zbk 10-y storage + requests | early del. | restore (free allowance) | months | total + restore |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const provider of PROVIDER_NAMES) {
    const [zbk] = simulateCosts({ provider, workload: photo, policies: [zbkPolicy], start }).results;
    console.log(`| ${provider} | ${$(zbk.total)} | ${$(zbk.earlyDeletion)} | ${$(zbk.restoreCost)} | ${zbk.restoreMonths} | ${$(zbk.total + zbk.restoreCost)} |`);
  }
}

// Item 5 of issue #20: the planner against every fixed policy of the grid
// (never, every 30/60/90 pushes, a new full at 2 … 24 months), per profile
// and rate of churn. "keep" = storage + requests + early deletion over 10
// years; the restore is the mean over every third month end of the last 24.
console.log(`\npolicies: 2000 GB + 20 GB/month, 30 pushes/month, 120 months; the best of ${FIXED_POLICY_GRID.length} fixed policies per row\n`);
console.log('| provider | churn | zbk keep | fulls | zbk at first payback keep | best fixed policy (keep) | zbk − best | zbk keep + mean restore | best fixed (keep + mean restore) |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
const short = (p) => p.replace('new full when last is ', 'full at ').replace(' months old', ' months').replace('new full every ', 'full every ').replace('never consolidate', 'never');
for (const provider of PROVIDER_NAMES) {
  for (const churnPerMonth of [0, 0.01, 0.03, 0.1]) {
    const workload = { initialGB: 2000, growthGBPerMonth: 20, churnPerMonth };
    const [zbk, payback, ...fixed] = simulateCosts({ provider, workload, policies: [zbkPolicy, paybackPolicy, ...FIXED_POLICY_GRID], start }).results;
    const keep = fixed.reduce((a, b) => (b.total < a.total ? b : a));
    const all = fixed.reduce((a, b) => (b.total + b.restoreCostMean < a.total + a.restoreCostMean ? b : a));
    const d = zbk.total - keep.total;
    console.log(
      `| ${provider} | ${churnPerMonth * 100} % | ${$(zbk.total)} | ${zbk.fulls} | ${$(payback.total)} | ${short(keep.policy)}: ${$(keep.total)} | ${d >= 0 ? '+' : '−'}${$(Math.abs(d))} (${((100 * d) / keep.total).toFixed(1)} %) | ${$(zbk.total + zbk.restoreCostMean)} | ${short(all.policy)}: ${$(all.total + all.restoreCostMean)} |`,
    );
  }
}
