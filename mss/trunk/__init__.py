"""trunk layer (see DESIGN.md)."""
