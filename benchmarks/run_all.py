"""Run every benchmark (what ``make bench`` calls); each prints its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py")

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"\n## {script.name}\n", flush=True)
        subprocess.run([sys.executable, str(script)], check=True)
