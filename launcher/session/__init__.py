"""What a saved job of a site is: its saved state, the options of one command, and the two
interfaces the lifecycle drives, `JobSite` (the site) and `JobKind` (the kind of job)."""
