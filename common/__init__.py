"""Plumbing shared by api, reconciler and proxy: settings, logging, metrics
exposition, database pool, ids, clock and the session-token format."""
