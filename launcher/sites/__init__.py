"""The two kinds of site behind one interface (`JobSite`): a cluster reached over SSH and this
machine; what a job asks of the cluster (job scripts, the size check, dry-run) and the
cluster-side environment (install)."""
