"""Persistent state behind IStore, with the SQLite implementation
(docs/architecture.md, docs/store.md).
"""
