"""Side-by-side benchmarks of eotoolkit and the launcher against what users would pick instead."""
