#!/bin/bash
@{directives}
# Step "@{step}" of pipeline "@{pipeline}", written by eo-hpc for site "@{uid}" (platform
# "@{platform}"). The rclone remotes (and their secrets) come from the private rclone.env.
set -eo pipefail
umask 077
RUN_DIR=@{run_dir}
WORKDIR=@{workdir}
echo "eo-hpc: pipeline @{pipeline} step @{step}, job ${@{job_id_variable}:-?} on $(hostname) started $(date -Is)"
# The step's start and end (with its exit status) for the report's timeline.
step_event() {
    printf '{"step":"@{step}","job":"%s","event":"%s","status":%s,"time":%s}\n' \
        "${@{job_id_variable}:-}" "$1" "${2:-null}" "$(date +%s.%N)" >> "$RUN_DIR/steps.jsonl" 2>/dev/null || true
}
step_event start
trap 'step_event end $?' EXIT
set -a
. "$RUN_DIR/rclone.env"
set +a
@{body}
