"""SIP trunks: carrier registration, trunk selection and per-direction limits
(docs/architecture.md).
"""
