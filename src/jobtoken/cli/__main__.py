"""``python -m jobtoken.cli``: the same as the `jobtoken` command."""

import sys

from jobtoken.cli import main

sys.exit(main())
