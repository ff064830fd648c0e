"""``python -m orchestrator``: the console script."""

import sys

from orchestrator.main import main

sys.exit(main())
