"""The session proxy: logs a member's browser in with the `open` URL's JWT and
streams HTTP and WebSocket traffic to that notebook's Marimo (DESIGN §6)."""
