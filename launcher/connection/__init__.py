"""The SSH connection to a site: login (agent keys, key file, second factor), commands and
files over it, and the local port forwards that survive reconnects."""
