"""`python -m cli ...` is `notebooks ...` (the supervisor runs children this way)."""

import sys

from cli.main import main

sys.exit(main())
