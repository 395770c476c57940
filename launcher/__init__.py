"""Launch JupyterLab and Dask on HPC clusters over SSH."""
