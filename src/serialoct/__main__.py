"""``python -m serialoct``: the same as the ``serialoct`` command."""

import sys

from serialoct.cli import main

sys.exit(main())
