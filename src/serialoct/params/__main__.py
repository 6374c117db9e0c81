"""Regenerate or check the README parameter tables.

Usage::

    python -m serialoct.params --write-readme README.md
    python -m serialoct.params --check-readme README.md   # exit 1 when stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serialoct.params.render import update_readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serialoct.params", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write-readme", type=Path, metavar="README", help="rewrite the tables in place")
    action.add_argument("--check-readme", type=Path, metavar="README", help="exit 1 if the tables are stale")
    args = parser.parse_args(argv)
    path = args.write_readme or args.check_readme
    text = path.read_text(encoding="utf-8")
    fresh = update_readme(text)
    if args.check_readme:
        if fresh != text:
            print(f"{path}: parameter tables are stale; run python -m serialoct.params --write-readme {path}")
            return 1
        return 0
    if fresh != text:
        path.write_text(fresh, encoding="utf-8")
        print(f"{path}: parameter tables updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
