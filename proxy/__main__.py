"""`python -m proxy`: the session proxy alone (the CLI's `notebooks proxy` does the same)."""

from common.settings import Settings
from proxy.serve import main

main(Settings.from_env())
