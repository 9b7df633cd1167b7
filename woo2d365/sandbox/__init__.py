"""Sandboxes: local emulators of the shop and of Business Central, for tests and ``demo``."""
