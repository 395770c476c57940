#!/bin/bash
@{directives}
# Batch job written by eo-hpc for site "@{uid}" (platform "@{platform}"): runs a script with
# @{workers} Dask workers that are SLURM jobs of their own (see batch_driver.py).
set -eo pipefail
umask 077
RUN_DIR=@{run_dir}
echo "eo-hpc: batch job ${SLURM_JOB_ID:-?} on $(hostname) started $(date -Is)"
@{activate}
export DASK_CONFIG="$RUN_DIR/dask"
exec @{python} "$RUN_DIR/batch_driver.py" --run-dir "$RUN_DIR" --workers @{workers} \
    --timeout @{timeout} -- @{script} @{script_args}
