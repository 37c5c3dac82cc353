#!/bin/sh
# sanoid post_snapshot_script: push after sanoid has taken its snapshots.
# In sanoid.conf, per template:  post_snapshot_script = /etc/sanoid/zbk-post-snapshot.sh
#                                script_timeout = 0
# Runs in the background so sanoid is not held up by a long upload; the
# manifest lock serialises overlapping runs.
export ZBK_CONFIG=/etc/zbk/config.toml
export ZBK_PASSPHRASE_FILE=/etc/zbk/passphrase
exec systemctl start --no-block zbk-push.service
