"""The notebooks REST API (DESIGN §5): writes desired state and enqueues
reconciles; never talks to a runtime."""
