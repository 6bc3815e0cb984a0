"""render (see viewer/__init__.py)."""
