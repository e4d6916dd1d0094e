"""registrar layer (see DESIGN.md)."""
