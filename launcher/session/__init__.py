"""A saved job of a site and its life: the lifecycle, the kinds of job (`JobKind`: Jupyter,
batch), their saved state and the options of one command."""
