#!/bin/bash
@{directives}
# JupyterLab batch job written by eo-hpc for site "@{uid}" (platform "@{platform}").
set -eo pipefail
umask 077
RUN_DIR=@{run_dir}
echo "eo-hpc: job ${SLURM_JOB_ID:-?} on $(hostname) started $(date -Is)"
@{activate}
export DASK_CONFIG="$RUN_DIR/dask"
exec @{python} "$RUN_DIR/jupyter_wrapper.py" --run-dir "$RUN_DIR" --ip 0.0.0.0 -- @{jupyter_args}
