/**
 * Live receive: when every volume of the next stream to receive can be
 * downloaded in this run, its `zfs receive` starts with its first volume
 * and is fed each part's plaintext as soon as the part authenticates, so
 * the stream is not read back from the staging dir after it is staged. The
 * downloads still stage and fsync every volume as without it, so a kill or
 * a failed receive leaves the same resumable state; if a volume turns out
 * not to be staged, the receive is killed before it sees the end of its
 * input (RestoreStep.abortLive) and the stream is received later from the
 * staged files (./receive.ts).
 */
import { existsSync } from 'node:fs';
import { IntegrityError } from '../../errors.js';
import { PlaintextFeed, type PlaintextSink } from '../../pipeline/download.js';
import { AbortError } from '../../pipeline/errors.js';
import { egressUsed, monthCap, partialSize, unmetered } from './egress.js';
import { monthOf, type JobVolume } from './job.js';
import { pollOf } from './poll.js';
import { explainReceiveFailure, finishReceive } from './receive.js';
import type { LiveReceive, RestoreStep } from './step.js';
import { receiveFlags, targetPort } from './target.js';

/**
 * The live receive `v` belongs to: the running one, or a new one when `v`
 * is the first volume of the next stream to receive and the whole stream
 * can be staged in this run. Null: `v` is only staged (received later
 * from the files).
 */
export async function liveFor(step: RestoreStep, v: JobVolume): Promise<LiveReceive | null> {
  const live = step.live;
  if (live) return live.vols[live.next] === v ? live : null;
  const si = v.streamIndex;
  const s = step.streamOf(v);
  if (s.received || v.volumeIndex !== 0 || step.liveError !== null) return null;
  if (!step.job.streams.slice(0, si).every((x) => x.received)) return null;
  const vols = step.job.volumes.filter((x) => x.streamId === s.streamId);
  if (vols[0] !== v || !(await wholeStreamNow(step, vols))) return null;
  const flags = await receiveFlags(step, si);
  // One part queued ahead of zfs (it has work while the next part is opened), three pooled
  // plaintext buffers (queued, being written into zfs's pipe, being opened); see BENCHMARKS.md.
  const feed = new PlaintextFeed({ highWaterMark: Math.max(...vols.map((u) => u.partSize)), poolSize: 3, allocate: (n) => step.opener.allocate(n) });
  step.ctx.log.info(`receiving @${s.to.name} into ${step.target} while its volumes download`);
  const done = targetPort(step).receive(step, si, feed.readable, flags, (n) => feed.written(n)).catch((err: unknown) => {
    throw explainReceiveFailure(step, err, si);
  });
  done.catch(() => undefined); // awaited in afterLiveVolume/abortLive
  step.live = { si, stream: s, vols, feed, next: 0, partsFed: 0, done };
  return step.live;
}

/**
 * True when, by the same rules advanceVolume applies (request time, month,
 * allowance, readable copy), every volume of a stream will be downloaded
 * by this run. What the step's listing says (a HEAD where it cannot tell,
 * ./poll.ts); a wrong guess only costs a killed
 * receive. A stream with volumes staged by an earlier run is received
 * from its files as before (a damaged staged file is quarantined and
 * stops the run, see quarantine in ./receive.ts).
 */
async function wholeStreamNow(step: RestoreStep, vols: JobVolume[]): Promise<boolean> {
  const metered = !unmetered(step);
  const cur = monthOf(step.now);
  let used = egressUsed(step, cur);
  for (const u of vols) {
    const path = step.path(u);
    if (u.phase === 'staged' || existsSync(path)) return false;
    if (metered) {
      const m = step.planMonth(u);
      if (cur < u.month) return false;
      if (m && step.now.getTime() < Date.parse(m.requestAt)) return false;
      if (u.notBefore && step.now.getTime() < Date.parse(u.notBefore)) return false;
    }
    // The step's listing tells, else a HEAD (./poll.ts).
    const state = (await pollOf(step).look(u))?.restore.state;
    if (state !== 'not-archived' && state !== 'restored') return false;
    if (metered) {
      const partial = await partialSize(path);
      const rest = u.storedSize - partial;
      if (used !== 0 && used + rest > monthCap(step.job)) return false;
      used += rest;
    }
  }
  return true;
}

/** Feeds `v`'s parts to the live receive, each part once, in order. */
export function sinkOf(live: LiveReceive, v: JobVolume): PlaintextSink {
  return async (partIndex, chunks) => {
    if (live.vols[live.next] !== v) throw new IntegrityError(`live receive of @${live.stream.to.name}: got ${v.key} out of order`);
    if (partIndex < live.partsFed) {
      for (const c of chunks) live.feed.release(c);
      return; // fed by an earlier pass over the same verified bytes
    }
    if (partIndex > live.partsFed) throw new IntegrityError(`live receive of @${live.stream.to.name}: part ${partIndex + 1} of ${v.key} came before part ${live.partsFed + 1}`);
    live.partsFed++;
    await live.feed.write(chunks);
  };
}

/** After advanceVolume(v): on to the next volume, finish the receive after the last, or give up when `v` is not staged. */
export async function afterLiveVolume(step: RestoreStep, live: LiveReceive, v: JobVolume): Promise<void> {
  if (step.live !== live) return; // aborted meanwhile
  if (v.phase !== 'staged' || live.partsFed !== v.partCount) {
    await step.abortLive(new AbortError(`${v.key} was not staged in this run`));
    return;
  }
  live.next++;
  live.partsFed = 0;
  if (live.next < live.vols.length) return;
  step.live = null;
  live.feed.end();
  try {
    await live.done;
  } catch (err) {
    // zfs's own failure (everything fed had authenticated): the staged files stay for the next run.
    step.liveError = err;
    return;
  }
  await finishReceive(step, live.stream, live.vols);
}
