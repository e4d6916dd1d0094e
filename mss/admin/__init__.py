"""Operations: mssctl, the control socket, the SSH manhole and metrics (docs/architecture.md)."""
