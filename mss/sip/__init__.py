"""The sans-I/O SIP stack: messages, transactions, dialogs and the core's message path
(docs/architecture.md).
"""
