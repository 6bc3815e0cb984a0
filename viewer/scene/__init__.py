"""scene (see viewer/__init__.py)."""
