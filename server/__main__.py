"""`python -m server ...`: the `nrt-alerts` command (server/entry.py)."""

import sys

from server.entry import main

sys.exit(main())
