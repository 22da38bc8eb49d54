"""Run a reconciler worker in its own process for tests that SIGKILL it.
Settings come as JSON in argv[1] (the test builds them directly); argv[2]
is an optional metrics port."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common.settings import Settings
from reconciler.worker import main

if __name__ == "__main__":
    raw = json.loads(sys.argv[1])
    raw["data_dir"] = Path(raw["data_dir"])
    raw["signing_keys"] = tuple(tuple(k) for k in raw["signing_keys"])
    port = int(sys.argv[2]) if len(sys.argv) > 2 else None
    sys.exit(main(Settings(**raw), metrics_port=port))
