"""collab (see viewer/__init__.py)."""
