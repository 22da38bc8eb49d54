"""The `notebooks` command line: the one entry point (up, api, worker, proxy, migrate, admin)."""
