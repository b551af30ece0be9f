"""``python -m rumpmp``: the command line (rumpmp.host.cli)."""

import sys

from rumpmp.host.cli import main

sys.exit(main())
