"""``python -m seedance_batch`` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
