/** Restore use cases: plan, run (the persisted state machine), status. */
export { restorePlan, type RestorePlanResult, type RestorePlanServiceOptions } from './plan.js';
export { restoreRun, type RestoreRunOptions, type RestoreRunResult } from './run.js';
export { restoreStatus, type RestoreStatusResult, type RestoreStatusJob, type RestoreStatusMonth } from './status.js';
export { loadJob, jobKey, stagedPath, type RestoreJob, type JobVolume, type NextAction, type VolumePhase } from './job.js';
