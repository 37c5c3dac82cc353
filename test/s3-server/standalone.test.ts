import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

const MAIN = join(fileURLToPath(new URL('.', import.meta.url)), 'main.js');

interface Endpoint {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Start main.js and wait for its JSON line. */
async function launch(args: string[]): Promise<{ child: ChildProcess; ep: Endpoint }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout! });
  const line = await new Promise<string>((resolve, reject) => {
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
  });
  rl.close();
  return { child, ep: JSON.parse(line) as Endpoint };
}

const killed = (c: ChildProcess): Promise<void> => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

describe('s3-server standalone', () => {
  let dir = '';
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prints its endpoint and keeps state after being killed', async () => {
    dir = await mkdtemp(join(tmpdir(), 's3srv-main-'));
    const first = await launch(['--dir', dir, '--bucket', 'bkt']);
    const client = (ep: Endpoint): S3Client =>
      new S3Client({ endpoint: ep.endpoint, region: ep.region, forcePathStyle: true, credentials: { accessKeyId: ep.accessKeyId, secretAccessKey: ep.secretAccessKey } });
    const s3a = client(first.ep);
    await s3a.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'survives' }));
    s3a.destroy();
    first.child.kill('SIGKILL');
    await killed(first.child);

    const second = await launch(['--dir', dir]);
    const s3b = client(second.ep);
    try {
      const got = await s3b.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
      assert.equal(await got.Body!.transformToString(), 'survives');
    } finally {
      s3b.destroy();
      second.child.kill('SIGTERM');
      await killed(second.child);
    }
  });
});
