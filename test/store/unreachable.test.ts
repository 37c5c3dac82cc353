/**
 * A store that cannot be reached: the error names the endpoint (or bucket
 * and region) and the errno in one line; interactive (quick) runs give a
 * store that never answered a short budget, unattended (patient) runs the
 * configured one. See src/store/retry-mode.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { PermanentStoreError, StoreError, StoreUnreachableError, TransientStoreError } from '../../src/store/errors.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { openStore } from '../../src/store/open-store.js';
import { RetryingStore } from '../../src/store/retry-store.js';
import {
  maxBackoffMs,
  minBackoffMs,
  PATIENT_CONNECT_TIMEOUT_MS,
  QUICK_CONNECT_TIMEOUT_MS,
  QUICK_FIRST_CONTACT,
  retryModeFromEnv,
  retryPolicy,
} from '../../src/store/retry-mode.js';
import { safeEndpoint, toStoreError } from '../../src/store/s3-store.js';
import { closedPort } from '../helpers/ports.js';

const CONFIG_DEFAULT = { retries: 8, minTimeoutMs: 500, maxTimeoutMs: 30_000 };
const TTY = { stdin: true, stderr: true };
const NO_TTY = { stdin: false, stderr: false };


describe('retry mode: interactive runs are quick, unattended ones patient', () => {
  it('ZBK_RETRY wins; else quick only on a terminal outside CI and systemd', () => {
    assert.equal(retryModeFromEnv({ ZBK_RETRY: 'quick' }, NO_TTY), 'quick');
    assert.equal(retryModeFromEnv({ ZBK_RETRY: 'patient' }, TTY), 'patient');
    assert.equal(retryModeFromEnv({ ZBK_RETRY: 'Quick ' }, NO_TTY), 'quick');
    assert.equal(retryModeFromEnv({}, TTY), 'quick');
    assert.equal(retryModeFromEnv({}, NO_TTY), 'patient', 'cron, pipes, tests');
    assert.equal(retryModeFromEnv({}, { stdin: false, stderr: true }), 'patient', 'stdin redirected: unattended');
    assert.equal(retryModeFromEnv({}, { stdin: true, stderr: false }), 'patient', 'stderr to a log file');
    assert.equal(retryModeFromEnv({ CI: 'true' }, TTY), 'patient');
    assert.equal(retryModeFromEnv({ CI: 'false' }, TTY), 'quick');
    assert.equal(retryModeFromEnv({ INVOCATION_ID: 'abc' }, TTY), 'patient', 'a systemd unit');
    assert.equal(retryModeFromEnv({ JOURNAL_STREAM: '8:1234' }, TTY), 'patient');
  });

  it('an invalid ZBK_RETRY is a config error (exit 3)', () => {
    assert.throws(
      () => retryModeFromEnv({ ZBK_RETRY: 'sometimes' }, TTY),
      (e: unknown) => e instanceof Error && (e as { exitCode?: number }).exitCode === ExitCode.CONFIG && /ZBK_RETRY/.test(e.message),
    );
  });

  it('patient keeps the configured budget; quick gives an unreached store seconds, far less than patient waits', () => {
    const patient = retryPolicy('patient', CONFIG_DEFAULT);
    const quick = retryPolicy('quick', CONFIG_DEFAULT);
    assert.deepEqual(patient.retry, CONFIG_DEFAULT);
    assert.equal(patient.firstContact, undefined, 'patient: an unreachable store gets the full budget');
    assert.equal(patient.connectTimeoutMs, PATIENT_CONNECT_TIMEOUT_MS);
    assert.deepEqual(quick.retry, CONFIG_DEFAULT, 'quick: once reached, failures get the full budget too');
    assert.deepEqual(quick.firstContact, QUICK_FIRST_CONTACT);
    assert.equal(quick.connectTimeoutMs, QUICK_CONNECT_TIMEOUT_MS);
    // Worst case of quick (every attempt waits out the connect timeout) against the least patient waits.
    const quickWorst = maxBackoffMs(QUICK_FIRST_CONTACT) + (QUICK_FIRST_CONTACT.retries + 1) * QUICK_CONNECT_TIMEOUT_MS;
    assert.ok(quickWorst <= 20_000, `quick worst case ${quickWorst} ms`);
    assert.ok(maxBackoffMs(QUICK_FIRST_CONTACT) <= 3_000);
    assert.ok(minBackoffMs(CONFIG_DEFAULT) >= 60_000, `patient waits ${minBackoffMs(CONFIG_DEFAULT)} ms at least`);
    assert.ok(minBackoffMs(CONFIG_DEFAULT) > 4 * quickWorst);
  });
});

describe('connection failures become one line naming the endpoint and errno', () => {
  const where = 'the store at http://127.0.0.1:5099';
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5099 at TCPConnectWrap.afterConnect [as oncomplete]'), { code: 'ECONNREFUSED', syscall: 'connect' });

  it('refused, no such host, DNS, no route: StoreUnreachableError (transient, exit 5)', () => {
    for (const [errno, words] of [
      ['ECONNREFUSED', 'connection refused'],
      ['ENOTFOUND', 'no such host'],
      ['EAI_AGAIN', 'DNS lookup failed'],
      ['EHOSTUNREACH', 'no route to host'],
      ['ENETUNREACH', 'network unreachable'],
    ] as const) {
      const e = toStoreError(Object.assign(new Error(`getaddrinfo ${errno} bucket.example`), { code: errno }), 'getBytes', 'zbk.key', undefined, where);
      assert.ok(e instanceof StoreUnreachableError && e instanceof TransientStoreError, errno);
      assert.equal(e.code, 'UNREACHABLE');
      assert.equal(e.exitCode, ExitCode.STORE);
      assert.equal(e.message, `cannot reach ${where}: ${errno} (${words})`);
    }
  });

  it('the message carries none of the SDK error text (internal names, stack)', () => {
    const e = toStoreError(refused, 'getBytes', 'zbk.key', undefined, where);
    assert.doesNotMatch(e.message, /TCPConnectWrap|afterConnect|getBytes|\n|\bat \S+ \(/);
    assert.doesNotMatch(String((e.cause as Error).message), /TCPConnectWrap/);
  });

  it("Node's happy-eyeballs AggregateError and connect timeouts", () => {
    const agg = Object.assign(new AggregateError([refused, refused], ''), {});
    assert.ok(toStoreError(agg, 'head', 'k', undefined, where) instanceof StoreUnreachableError);
    const sdkTimeout = Object.assign(new Error('@smithy/node-http-handler - the request socket did not establish a connection with the server within the configured timeout of 5000 ms.'), {
      name: 'TimeoutError',
    });
    const t = toStoreError(sdkTimeout, 'head', 'k', undefined, where);
    assert.ok(t instanceof StoreUnreachableError);
    assert.match(t.message, /^cannot reach the store at http:\/\/127\.0\.0\.1:5099: ETIMEDOUT/);
    const nodeTimeout = Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT', syscall: 'connect' });
    assert.ok(toStoreError(nodeTimeout, 'head', 'k', undefined, where) instanceof StoreUnreachableError);
    // A read timeout on an established connection stays an ordinary transient error.
    const readTimeout = Object.assign(new Error('read ETIMEDOUT'), { code: 'ETIMEDOUT', syscall: 'read' });
    const r = toStoreError(readTimeout, 'head', 'k', undefined, where);
    assert.ok(r instanceof TransientStoreError && !(r instanceof StoreUnreachableError));
  });

  it('TLS failures are permanent (a retry does not fix a certificate), named the same way', () => {
    for (const code of ['CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'EPROTO', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']) {
      const e = toStoreError(Object.assign(new Error(`tls: ${code}`), { code }), 'head', 'k', undefined, 'the store at https://minio.lan:9000');
      assert.ok(e instanceof PermanentStoreError, code);
      assert.equal(e.code, 'TLS');
      assert.equal(e.transient, false);
      assert.match(e.message, new RegExp(`^cannot reach the store at https://minio\\.lan:9000: ${code} \\(TLS`));
    }
  });

  it('an HTTP answer is never a connection failure', () => {
    const e = toStoreError({ name: 'InternalError', code: 'ECONNREFUSED', $metadata: { httpStatusCode: 500 } }, 'head', 'k', undefined, where);
    assert.ok(!(e instanceof StoreUnreachableError));
  });

  it('endpoints are shown without credentials, query or fragment', () => {
    assert.equal(safeEndpoint('http://127.0.0.1:5099'), 'http://127.0.0.1:5099');
    assert.equal(safeEndpoint('https://AKIA:s3cr3t@minio.lan:9000/base/?X-Amz-Signature=abc#f'), 'https://minio.lan:9000/base/');
    assert.doesNotMatch(safeEndpoint('not a url with s3cr3t'), /s3cr3t/);
  });
});

/** A memory store whose head fails with "cannot reach" while `down` is set. */
class FlakyNetworkStore extends MemoryStore {
  down = true;
  heads = 0;
  override async head(key: string) {
    this.heads++;
    if (this.down) throw new StoreUnreachableError('cannot reach the store at http://127.0.0.1:1: ECONNREFUSED (connection refused)', 'ECONNREFUSED');
    return super.head(key);
  }
}

describe('RetryingStore: the first-contact budget', () => {
  const FULL = { retries: 6, minTimeoutMs: 1, maxTimeoutMs: 2 };
  const QUICK = { retries: 2, minTimeoutMs: 1, maxTimeoutMs: 2 };

  it('quick: a store that never answered gets the short budget', async () => {
    const inner = new FlakyNetworkStore();
    const store = new RetryingStore(inner, FULL, { firstContact: QUICK, randomize: false });
    await assert.rejects(store.head('a'), StoreUnreachableError);
    assert.equal(inner.heads, QUICK.retries + 1);
  });

  it('patient (no first-contact budget): the full budget', async () => {
    const inner = new FlakyNetworkStore();
    const store = new RetryingStore(inner, FULL, { randomize: false });
    await assert.rejects(store.head('a'), StoreUnreachableError);
    assert.equal(inner.heads, FULL.retries + 1);
  });

  it('quick, once the store has answered: a lost connection gets the full budget', async () => {
    const inner = new FlakyNetworkStore();
    inner.down = false;
    const store = new RetryingStore(inner, FULL, { firstContact: QUICK, randomize: false });
    await store.put('a', Buffer.from('x'));
    inner.down = true;
    await assert.rejects(store.head('a'), StoreUnreachableError);
    assert.equal(inner.heads, FULL.retries + 1);
  });

  it('quick: an answer that is an error (not found) also counts as reached', async () => {
    const inner = new FlakyNetworkStore();
    inner.down = false;
    const store = new RetryingStore(inner, FULL, { firstContact: QUICK, randomize: false });
    await assert.rejects(store.head('missing'), (e: unknown) => e instanceof StoreError && e.code === 'NOT_FOUND');
    inner.down = true;
    inner.heads = 0;
    await assert.rejects(store.head('a'), StoreUnreachableError);
    assert.equal(inner.heads, FULL.retries + 1);
  });
});

describe('S3Store on a closed port', () => {
  it('quick: fails within seconds, naming the endpoint and ECONNREFUSED', async () => {
    const port = await closedPort();
    const endpoint = `http://127.0.0.1:${port}`;
    const store = openStore(
      { url: 's3://zbk-test/pfx', endpoint, region: 'us-east-1', pathStyle: true, dataStorageClass: 'DEEP_ARCHIVE', metaStorageClass: 'STANDARD', checksumCalculation: 'when_supported' },
      { retryMode: 'quick', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'very-secret-key' } },
    );
    const started = Date.now();
    await assert.rejects(store.getBytes('zbk.key'), (e: unknown) => {
      assert.ok(e instanceof StoreUnreachableError, String(e));
      assert.equal(e.exitCode, ExitCode.STORE);
      assert.equal(e.message, `cannot reach the store at ${endpoint}: ECONNREFUSED (connection refused)`);
      assert.doesNotMatch(e.message, /very-secret-key|AKIAEXAMPLE/);
      return true;
    });
    const took = Date.now() - started;
    // Generous bound (a loaded machine): the patient budget waits at least a minute.
    assert.ok(took < 20_000, `took ${took} ms`);
    store.s3?.destroy();
  });
});
