"""Digest authentication for SIP (RFC 3261 §22.4 profiling RFC 2617; RFC 7616 algorithms as
RFC 8760 brings them to SIP), one module per role, all pure: ``hashing`` (HA1 and the
request-digest; standard library only, so the store can use it), ``nonces`` (stateless nonces
and replay protection), ``headers`` (the challenge and credential header values), ``server``
(challenge and verify), ``client`` (answering a challenge).
"""
