"""``python -m tuneops`` runs the CLI."""

import sys

from tuneops.cli import main

sys.exit(main())
