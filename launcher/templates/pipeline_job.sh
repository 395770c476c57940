#!/bin/bash
@{directives}
# Step "@{step}" of pipeline "@{pipeline}", written by eo-hpc for site "@{uid}" (platform
# "@{platform}"). The rclone remotes (and their secrets) come from the private rclone.env.
set -eo pipefail
umask 077
RUN_DIR=@{run_dir}
WORKDIR=@{workdir}
echo "eo-hpc: pipeline @{pipeline} step @{step}, job ${@{job_id_variable}:-?} on $(hostname) started $(date -Is)"
set -a
. "$RUN_DIR/rclone.env"
set +a
@{body}
