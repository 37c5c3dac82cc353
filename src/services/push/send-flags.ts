/**
 * Which `zfs send` flags a stream is made with, and how a recorded flag list
 * becomes send options again.
 *
 * A new chain (a full stream) is raw (`-w`) per the dataset's `raw` setting:
 * `auto` when the dataset is natively encrypted and the ZFS can send raw,
 * `true` insists (an error where that is impossible), `false` never. An
 * incremental keeps the raw-ness of the stream it builds on (OpenZFS receives
 * a raw incremental only on top of a raw stream, and the other way round);
 * an explicit setting that disagrees with the chain starts a new one (a full
 * stream, with the reason). `-c`, `-L` and `-e` are added where the ZFS
 * supports them. The list is recorded per stream, and a resume re-sends with
 * exactly the recorded flags, or refuses.
 */
import type { RawSendSetting } from '../../config/config.js';
import { ConfigError, OperationError } from '../../errors.js';
import type { SendOptions, ZfsCapabilities } from '../../zfs/types.js';
import type { Zfs } from '../../zfs/zfs.js';

/** The optional flags zbk sends with, in the order zfs gets them, and the capability and option each needs. */
const FLAGS = [
  { flag: '-w', cap: 'rawSend', option: 'raw' },
  { flag: '-c', cap: 'compressedSend', option: 'compressed' },
  { flag: '-L', cap: 'largeBlocks', option: 'largeBlocks' },
  { flag: '-e', cap: 'embeddedData', option: 'embeddedData' },
] as const;

type FlagOptions = Pick<SendOptions, 'raw' | 'compressed' | 'largeBlocks' | 'embeddedData'>;
type Caps = Pick<ZfsCapabilities, 'rawSend' | 'compressedSend' | 'largeBlocks' | 'embeddedData' | 'implementation' | 'version'>;

function describeZfs(caps: Caps): string {
  return caps.version ? `${caps.implementation} ${caps.version}` : caps.implementation === 'unknown' ? 'this ZFS' : caps.implementation;
}

/** `-c -L -e` where supported, with `-w` first when `raw`. */
export function flagsFor(raw: boolean, caps: Caps): string[] {
  return FLAGS.filter((f) => (f.flag === '-w' ? raw : caps[f.cap])).map((f) => f.flag);
}

/**
 * The flags of a stream recorded without them (by a zbk before flags were
 * recorded): that zbk sent `-c -L -e` where the ZFS supported them, never `-w`.
 */
export function legacySendFlags(caps: Caps): string[] {
  return flagsFor(false, caps);
}

/** The send options that make `zfs send` run with exactly `flags`; OperationError naming what this ZFS cannot do. */
export function sendOptionsFor(flags: readonly string[], caps: Caps, what: string): FlagOptions {
  const options: FlagOptions = {};
  const missing: string[] = [];
  for (const flag of flags) {
    const known = FLAGS.find((f) => f.flag === flag);
    if (!known) missing.push(`${flag} (not an option this zbk sends with)`);
    else if (!caps[known.cap]) missing.push(flag);
    else options[known.option] = true;
  }
  if (missing.length > 0) {
    throw new OperationError(
      `${what} was started with "zfs send ${flags.join(' ')}", and ${describeZfs(caps)} cannot send ${missing.join(', ')}: ` +
        'sent otherwise the stream would not be the same bytes as the volumes already uploaded. Run the push with a ZFS that has these flags (the one that started it)',
      'SEND_FLAGS_UNAVAILABLE',
    );
  }
  return options;
}

/**
 * Whether a new chain of `dataset` is sent raw, per its `raw` setting.
 * ConfigError when `raw = true` and this ZFS cannot send raw or the dataset
 * is not natively encrypted. `zfs get encryption` only runs when it decides.
 */
export async function rawForNewChain(zfs: Pick<Zfs, 'isEncrypted'>, caps: Caps, dataset: string, setting: RawSendSetting): Promise<boolean> {
  if (setting === false) return false;
  if (setting === 'auto') return caps.rawSend && (await zfs.isEncrypted(dataset));
  if (!caps.rawSend) {
    throw new ConfigError(`${dataset}: raw = true in its [[dataset]] entry, but ${describeZfs(caps)} cannot send raw (zfs send -w): upgrade to OpenZFS 2.x, or set raw = "auto" or false`, 'RAW_SEND_UNAVAILABLE');
  }
  if (!(await zfs.isEncrypted(dataset))) {
    throw new ConfigError(`${dataset}: raw = true in its [[dataset]] entry, but the dataset is not natively encrypted (encryption=off): set raw = "auto" or false`, 'RAW_SEND_NOT_ENCRYPTED');
  }
  return true;
}

export interface FlagChoice {
  flags: string[];
  /** Set when the incremental cannot keep its chain's kind of send: a full stream is needed, for this reason. */
  fullBecause: string | null;
}

/**
 * The flags of a new stream. `chainRaw` is whether the stream it would build
 * on was sent raw, or null for a full stream (a new chain).
 */
export async function chooseSendFlags(
  zfs: Pick<Zfs, 'isEncrypted'>,
  caps: Caps,
  dataset: string,
  setting: RawSendSetting,
  chainRaw: boolean | null,
): Promise<FlagChoice> {
  if (chainRaw === null) return { flags: flagsFor(await rawForNewChain(zfs, caps, dataset, setting), caps), fullBecause: null };
  if (setting === 'auto') {
    if (chainRaw && !caps.rawSend) {
      return { flags: flagsFor(false, caps), fullBecause: `its chain was sent raw (-w) and ${describeZfs(caps)} cannot send raw` };
    }
    return { flags: flagsFor(chainRaw, caps), fullBecause: null };
  }
  const raw = await rawForNewChain(zfs, caps, dataset, setting);
  if (raw === chainRaw) return { flags: flagsFor(raw, caps), fullBecause: null };
  const chain = chainRaw ? 'raw (-w)' : 'without -w';
  return {
    flags: flagsFor(raw, caps),
    fullBecause: `raw = ${String(setting)} in the config, but its chain was sent ${chain}; an incremental of the other kind cannot be received on top of it`,
  };
}

/** Whether a recorded flag list (null: recorded before flags were, never raw) is a raw send. */
export function isRaw(flags: readonly string[] | null): boolean {
  return flags?.includes('-w') ?? false;
}
