/**
 * The injectable clock of CLI processes. Deletion decisions depend on
 * object ages measured in months (the 180-day Deep Archive minimum), which
 * tests cannot wait for: `ZBK_NOW` lets an end-to-end test run the real CLI
 * at a chosen instant, in step with the S3 test server's TestClock.
 *
 * TEST-ONLY: never set `ZBK_NOW` in production. A wrong clock makes zbk
 * believe objects are older than they are, and it would then delete them
 * before their minimum storage duration (an early-deletion charge).
 */
import { ConfigError } from '../../errors.js';

/**
 * The process clock: real time, or — when `ZBK_NOW` holds an ISO 8601
 * instant — that instant, frozen for the whole process (every "now" of one
 * run is the same, so a test knows exactly what the run saw).
 *
 * @throws ConfigError when `ZBK_NOW` is set but not a valid date.
 */
export function clockFromEnv(env: NodeJS.ProcessEnv = process.env): () => Date {
  const spec = env.ZBK_NOW;
  if (spec === undefined || spec === '') return () => new Date();
  const ms = Date.parse(spec);
  if (!Number.isFinite(ms) || !/^\d{4}-\d{2}-\d{2}/.test(spec)) {
    throw new ConfigError(`ZBK_NOW must be an ISO 8601 date (test-only clock), got ${JSON.stringify(spec)}`);
  }
  return () => new Date(ms);
}
