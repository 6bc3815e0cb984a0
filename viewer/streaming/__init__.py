"""streaming (see viewer/__init__.py)."""
