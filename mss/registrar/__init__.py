"""The registrar: REGISTER with digest authentication, bans and the location service
(docs/architecture.md).
"""
