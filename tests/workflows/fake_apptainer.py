"""A stand-in for ``apptainer``, so that ``--use_apptainer`` can run without a container runtime.

Run as ``python fake_apptainer.py ARGS...`` through a small ``apptainer``
executable first on ``PATH``. Every call appends its arguments to
``$FAKE_APPTAINER_STATE/calls.jsonl``. ``--version`` answers like Apptainer;
``exec [options] IMAGE SHELL -c COMMAND`` runs ``SHELL -c COMMAND`` on the
host (the "image" is the test's own environment, serialoct on ``PATH``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main(args: list[str]) -> int:
    state = Path(os.environ["FAKE_APPTAINER_STATE"])
    with open(state / "calls.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(args) + "\n")
    if args[:1] == ["--version"] or args[:1] == ["version"]:
        print("apptainer version 1.3.4")
        return 0
    if args[:1] == ["exec"] and "-c" in args:
        i = args.index("-c")
        return subprocess.run([args[i - 1], "-c", args[i + 1]]).returncode
    print(f"fake apptainer: unsupported call {args}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
