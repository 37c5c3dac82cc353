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
