#!/bin/bash
@{directives}
# JupyterLab job written by eo-hpc for site "@{uid}" (platform "@{platform}").
set -eo pipefail
umask 077
RUN_DIR=@{run_dir}
echo "eo-hpc: job ${@{job_id_variable}:-?} on $(hostname) started $(date -Is)"
@{activate}
@{exports}
# Dask dashboard links go through Jupyter's proxy (jupyter-server-proxy): <prefix>proxy/<port>/status
export JUPYTERHUB_SERVICE_PREFIX="${JUPYTERHUB_SERVICE_PREFIX:-/}"
export DASK_DISTRIBUTED__DASHBOARD__LINK='{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status'
exec @{python} "$RUN_DIR/jupyter_wrapper.py" --run-dir "$RUN_DIR" --ip 0.0.0.0 @{wrapper_args}-- \
    @{jupyter_args}
