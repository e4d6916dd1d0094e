"""The Lua service engine: one sandboxed runtime per service
(docs/architecture.md, docs/lua-api.md).
"""
