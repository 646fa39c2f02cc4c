"""`python -m qa` runs the `qa` command."""

import sys

from qa.cli import main

sys.exit(main())
