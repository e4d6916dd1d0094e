"""admin layer (see DESIGN.md)."""
