#!/usr/bin/env python3
"""JupyterLab on an HPC cluster in one command: ``python run_jupyter.py --uid SITE --mode run``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launcher.cli import main

if __name__ == "__main__":
    sys.exit(main())
