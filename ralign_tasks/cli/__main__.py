"""``python -m ralign_tasks.cli``: the ``ralign`` command."""

import sys

from ralign_tasks.cli.main import main

sys.exit(main())
