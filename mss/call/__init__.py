"""call layer (see DESIGN.md)."""
