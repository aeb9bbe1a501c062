"""``python -m clients.python``: see clients.python.cli."""

import sys

from clients.python.cli import main

sys.exit(main())
