"""``python -m mcsan``: the command line, as ``mcsan`` (what ``torchrun -m mcsan train`` runs)."""

import sys

from mcsan.cli import main

sys.exit(main())
