import { Flags } from '@oclif/core';
import { BaseCommand } from '../../src/cli/base-command.js';
import { rebuild, type RebuildResult } from '../../src/services/rebuild.js';

export default class ManifestRebuild extends BaseCommand {
  static override summary = 'Recreate the local manifest from the bucket (new machine, lost or corrupt state dir).';
  static override description = `Starts from the newest manifest mirror, by the sequence number sealed inside it, that decrypts and passes its checks, then adds every stream whose sealed stream record is in the store, checking each volume against the listing (and its metadata with a HEAD where it has some). Archived data is never read, so this costs a few requests, not a restore. Objects that cannot be placed (incomplete uploads, metadata that disagrees with its record, records whose volumes are missing) are listed, never guessed.

A mirror older than the one the replaced manifest had seen (a rolled-back bucket, newer mirrors deleted), one stored under another mirror's name, or one dated more than a day ahead is refused with a warning; the stream records still give every restorable snapshot.

An existing manifest is refused unless --force, which moves it aside (never deletes it).

Exit codes: 0 ok, 3 config / no repository, 4 passphrase, 5 store, 8 locked (--no-wait), 9 manifest exists (without --force) or rebuild failed.`;
  static override examples = ['<%= config.bin %> manifest rebuild', '<%= config.bin %> manifest rebuild --force --json'];
  static override flags = {
    force: Flags.boolean({ description: 'Move an existing manifest aside and rebuild.' }),
    'ignore-mirrors': Flags.boolean({ description: 'Rebuild from stream records only (when every mirror is suspect).' }),
    'no-wait': Flags.boolean({ description: 'Fail at once (exit 8) if another zbk holds the manifest lock.' }),
  };

  async run(): Promise<RebuildResult> {
    const { flags } = await this.parse(ManifestRebuild);
    const r = await rebuild(this.context(flags), { force: flags.force, ignoreMirrors: flags['ignore-mirrors'], wait: !flags['no-wait'] });
    this.say(`rebuilt ${r.manifestPath} from ${r.source === 'mirror' ? `mirror ${r.mirrorKey ?? ''}` : 'stream records'}`);
    this.say(`${r.streams} complete stream(s) (${r.streamsFromRecords} from stream records) for ${r.datasets.length} dataset(s)${r.datasets.length ? `: ${r.datasets.join(', ')}` : ''}`);
    if (r.movedAside) this.say(`the previous manifest was moved to ${r.movedAside}`);
    for (const s of r.skippedMirrors) this.note(`${s.refused ? 'warning: refused' : 'skipped'} mirror ${s.key}: ${s.reason}`);
    for (const w of r.warnings) this.note(`warning: ${w}`);
    if (r.unplaced.length) {
      this.say(`${r.unplaced.length} object(s) could not be placed (left in the store untouched):`);
      for (const u of r.unplaced) this.say(`  ${u.key}: ${u.reason}`);
    }
    return r;
  }
}
