"""The B2BUA call core: calls, legs, routing, services hooks, media seam, CDRs
(docs/architecture.md).
"""
