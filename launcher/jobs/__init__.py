"""The jobs of a site driven through their life: the lifecycle (start, attach, status, stop,
logs) and the kinds it drives, a Jupyter session and a batch-mode job (pipelines have a room
of their own)."""
