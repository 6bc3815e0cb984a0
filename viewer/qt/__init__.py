"""qt (see viewer/__init__.py)."""
