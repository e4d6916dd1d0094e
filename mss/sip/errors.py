"""Parse errors carry the SIP status code and reason phrase to answer with (DESIGN.md: errors)."""
# -*- test-case-name: tests.sip.test_message -*-


class SIPParseError(ValueError):
    """The bytes are not an acceptable SIP message.

    ``status`` is the response code the RFCs ask for (400, 416, 505, 513, ...), ``reason`` a
    phrase that says what was wrong. ``partial`` is the request as far as it parsed when it
    is complete enough to build a response (Via, From, To, Call-ID, CSeq), else None.
    """

    def __init__(self, reason: str, status: int = 400, partial=None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.partial = partial
