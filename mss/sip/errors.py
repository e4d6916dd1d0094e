# -*- test-case-name: tests.sip.test_message -*-
"""Parse errors carry the SIP status code and reason phrase to answer with (docs/architecture.md)."""


class SIPParseError(ValueError):
    """The bytes are not an acceptable SIP message.

    ``status`` is the response code the RFCs ask for (400, 416, 505, 513, ...), ``reason`` a
    phrase that says what was wrong (``phrase``: the same, safe and short for a status line).
    ``partial`` is the request as far as it parsed when a response to it can be routed (a
    request whose top Via parses), else None: answer it with
    ``make_response(partial, status, phrase, to_tag=...)``, which copies Via, From, To,
    Call-ID and CSeq as received. Do not use other accessors of ``partial``: From, To or
    CSeq may be the very thing that is malformed.
    """

    def __init__(self, reason: str, status: int = 400, partial=None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.partial = partial

    @property
    def phrase(self) -> str:
        """``reason`` fit for a Reason-Phrase (§25.1): printable, one line, at most 100 chars."""
        text = "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else "?"
                       for c in self.reason[:100])
        return text or "Bad Request"
