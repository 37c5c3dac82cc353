import { Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import { PROVIDER_NAMES } from '../src/cost/providers/index.js';
import { init, type InitResult } from '../src/services/init.js';

export default class Init extends BaseCommand {
  static override summary = 'Create a repository: config file, encryption key, key file in the store, local manifest.';
  static override description = `Writes the config (mode 0600), creates a random master key wrapped by your passphrase (Argon2id), stores the key file in the store and checks access. For S3 it shows whose credentials are used and warns when no lifecycle rule aborts incomplete multipart uploads.

The passphrase comes from ZBK_PASSPHRASE_FILE, else a prompt (asked twice); one the zxcvbn-ts estimator scores below 3 of 4 is refused (--allow-weak-passphrase accepts it). An existing repository is never overwritten: --connect uses it from this machine (then run "zbk manifest rebuild"), --force starts a new one and keeps the old key file aside.

Exit codes: 0 ok, 2 bad flags / weak passphrase (WEAK_PASSPHRASE) / --kdf min outside tests (WEAK_KDF), 3 config exists / repository exists / another repository's manifest in the state directory (FOREIGN_MANIFEST) / state directory or config not writable or full, 4 key problem, 5 store unreachable or access denied.`;

  static override examples = [
    '<%= config.bin %> init --store s3://my-bucket/zbk --region eu-west-1 --dataset tank/photos',
    '<%= config.bin %> init --store file:///mnt/usb/zbk --dataset tank/photos',
    '<%= config.bin %> init --store s3://my-bucket/zbk --connect',
  ];

  static override flags = {
    store: Flags.string({ description: 'Store URL: s3://bucket[/prefix] or file:///absolute/dir.', required: true }),
    provider: Flags.string({
      description: 'Provider profile: writes its storage classes, region, endpoint, path style, checksum setting and a part size within its part limit into the new config (docs/COSTS.md "Providers"); an unknown name exits 2.',
      options: [...PROVIDER_NAMES],
      helpValue: '<name>',
    }),
    endpoint: Flags.string({ description: 'S3 endpoint URL (LocalStack, MinIO, other S3 services).' }),
    region: Flags.string({ description: 'AWS region of the bucket.' }),
    'path-style': Flags.boolean({ description: 'Use path-style S3 addressing (most non-AWS endpoints need it).' }),
    dataset: Flags.string({ description: 'Dataset to back up (repeatable).', multiple: true }),
    'state-dir': Flags.string({ description: 'Directory for the local manifest (default: one per repository, /var/lib/zbk/<repository id> for root, else ~/.local/state/zbk/<repository id>).' }),
    'part-size': Flags.string({ description: 'Plaintext bytes per uploaded part, e.g. 64MiB.' }),
    'volume-size': Flags.string({ description: 'Plaintext bytes per object, e.g. 4GiB (keep well below the monthly free egress).' }),
    'data-storage-class': Flags.string({ description: 'Storage class of stream data.', default: undefined }),
    'checksum-calculation': Flags.string({ description: 'when_required for S3 services that reject the SDK default CRC32.', options: ['when_supported', 'when_required'] }),
    kdf: Flags.string({ description: 'Argon2id strength of the passphrase slot (min is for tests only: refused unless ZBK_TEST_ALLOW_WEAK_KDF=1).', options: ['moderate', 'interactive', 'min'], default: 'moderate' }),
    'allow-weak-passphrase': Flags.boolean({ description: 'Accept a passphrase the strength estimator (zxcvbn-ts) scores below 3 of 4 (a warning instead of an error).' }),
    connect: Flags.boolean({ description: 'Use an existing repository at --store from this machine (fails when there is none; with an existing config, add --force to replace it).' }),
    force: Flags.boolean({ description: 'Replace an existing config; without --connect, also start a new repository over an existing one (old key file and mirrors kept aside).' }),
    'create-lifecycle-rule': Flags.boolean({ description: 'Create a bucket lifecycle rule that aborts incomplete multipart uploads after 7 days.' }),
  };

  async run(): Promise<InitResult> {
    const { flags } = await this.parse(Init);
    const result = await init(
      {
        configPath: this.configPath(flags),
        store: flags.store,
        endpoint: flags.endpoint,
        provider: flags.provider,
        region: flags.region,
        pathStyle: flags['path-style'],
        datasets: flags.dataset,
        stateDir: flags['state-dir'],
        partSize: flags['part-size'],
        volumeSize: flags['volume-size'],
        dataStorageClass: flags['data-storage-class'],
        checksumCalculation: flags['checksum-calculation'] as 'when_supported' | 'when_required' | undefined,
        kdf: flags.kdf as 'moderate' | 'interactive' | 'min',
        allowWeakPassphrase: flags['allow-weak-passphrase'],
        connect: flags.connect,
        force: flags.force,
        createLifecycleRule: flags['create-lifecycle-rule'],
        log: this.logger(),
      },
      this.passphrase(),
    );
    this.say(`${result.created ? 'created' : 'connected to'} repository ${result.store} (key ${result.keyId})`);
    this.say(`config: ${result.configPath}`);
    if (result.identity) this.say(`credentials: ${result.identity.arn}`);
    if (result.lifecycleRule === 'created') this.say('created a lifecycle rule aborting incomplete multipart uploads after 7 days');
    this.say(result.created ? 'next: zbk push <dataset>; keep a paper copy of the key: zbk key export' : 'next: zbk manifest rebuild');
    return result;
  }
}
