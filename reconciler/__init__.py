"""Reconciler workers: take `reconcile` jobs, observe the runtime, converge it
to each notebook's desired state and move its status (DESIGN §3-§4)."""
