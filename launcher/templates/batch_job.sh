#!/bin/bash
@{directives}
# Batch job written by eo-hpc for site "@{uid}" (platform "@{platform}"): runs a script with
# @{workers_text} (see eoshared.scheduler.driver).
set -eo pipefail
umask 077
RUN_DIR=@{run_dir}
echo "eo-hpc: batch job ${@{job_id_variable}:-?} on $(hostname) started $(date -Is)"
@{activate}
@{exports}
exec @{python} -m eoshared.scheduler.driver --run-dir "$RUN_DIR" @{workers_option} \
    --timeout @{timeout} -- @{script} @{script_args}
