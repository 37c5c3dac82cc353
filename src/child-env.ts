/**
 * The environment zbk gives the programs it starts (zfs, hook commands):
 * its own, without its secrets. A `zfs` wrapper, a pre-push script or a
 * notification command has no use for AWS credentials or the passphrase, and
 * a program that logs its environment (or crashes with a core dump) must not
 * take them along.
 */

/** Names never passed to a child process. */
const SECRET_ENV =
  /^(AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|SECURITY_TOKEN|WEB_IDENTITY_TOKEN_FILE|CONTAINER_AUTHORIZATION_TOKEN(_FILE)?)|ZBK_PASSPHRASE(_FILE)?)$/;

/** `env` without zbk's secrets. */
export function childEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !SECRET_ENV.test(k)) out[k] = v;
  return out;
}
