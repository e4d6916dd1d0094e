"""sip layer (see DESIGN.md)."""
