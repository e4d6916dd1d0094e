# -*- test-case-name: tests.sip.test_torture -*-
"""The RFC 4475 and RFC 5118 torture messages against ``parse``, ``to_bytes``,
``make_response`` and ``check_request``.

Every file in tests/data/torture/ has one row in ``TABLE``: the RFC section that states the
expectation, and the expectation itself:

- ``Valid(answer=None, roundtrip=EXACT)``: parses; ``to_bytes()`` gives back the bytes
  (``EXACT``; ``ADD_CL`` when the message had no Content-Length, which we add; ``START``
  when the Request-Line had extra SP, which we normalise); the body is intact;
  ``check_request`` (requests) answers ``answer`` (None: process normally).
- ``Invalid(status, partial)``: ``parse`` raises ``SIPParseError`` with ``status``;
  ``partial`` says whether a response can be built (top Via usable, a request).

Where the RFC lets an element choose between rejecting and being liberal, the row says
which we chose and why.
"""
import hashlib
import os
import random

import attrs
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.errors import SIPParseError
from mss.sip.checks import check_request
from mss.sip.message import Request, Response, make_response
from mss.sip.parser import Incomplete, parse

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "torture")

EXACT, ADD_CL, START = "exact", "add-cl", "start"


@attrs.frozen
class Valid:
    section: str
    answer: int | None = None
    roundtrip: str = EXACT
    consumed: int | None = None          # when the datagram holds more than the message


@attrs.frozen
class Invalid:
    section: str
    status: int = 400
    partial: bool = True


TABLE = {
    # RFC 4475 §3.1.1 valid messages
    "wsinv": Valid("4475 §3.1.1.1"),
    # unknown method: 501 (§8.2.1); the rest of the message is fine
    "intmeth": Valid("4475 §3.1.1.2", answer=501),
    "esc01": Valid("4475 §3.1.1.3"),
    "escnull": Valid("4475 §3.1.1.4"),
    # RE%47IST%45R is not REGISTER: an unknown method, 501
    "esc02": Valid("4475 §3.1.1.5", answer=501),
    "lwsdisp": Valid("4475 §3.1.1.6"),
    "longreq": Valid("4475 §3.1.1.7"),
    # extra octets after Content-Length in a datagram are ignored (§18.3)
    "dblreq": Valid("4475 §3.1.1.8", consumed=300),
    "semiuri": Valid("4475 §3.1.1.9"),
    "transports": Valid("4475 §3.1.1.10"),
    "mpart01": Valid("4475 §3.1.1.11"),
    "unreason": Valid("4475 §3.1.1.12"),
    "noreason": Valid("4475 §3.1.1.13"),
    # RFC 4475 §3.1.2 invalid messages
    "badinv01": Invalid("4475 §3.1.2.1", partial=False),   # the Via itself is broken
    "clerr": Invalid("4475 §3.1.2.2"),
    "ncl": Invalid("4475 §3.1.2.3"),
    "scalar02": Invalid("4475 §3.1.2.4"),
    "scalarlg": Invalid("4475 §3.1.2.5", partial=False),   # a response: never answered
    "quotbal": Invalid("4475 §3.1.2.6"),
    "ltgtruri": Invalid("4475 §3.1.2.7"),
    "lwsruri": Invalid("4475 §3.1.2.8"),
    # extra SP in the Request-Line: "acceptable to reject ... may ignore"; we accept (no
    # ambiguity: a Request-URI holds no SP) and serialize a clean line
    "lwsstart": Valid("4475 §3.1.2.9", roundtrip=START),
    "trws": Valid("4475 §3.1.2.10", roundtrip=START),
    "escruri": Invalid("4475 §3.1.2.11"),
    # non-GMT Date: "acceptable to reject ... could ignore the Date"; we never use Date
    "baddate": Valid("4475 §3.1.2.12"),
    # Contact addr-spec with '?': parse is fine, the UAS answers 400
    "regbadct": Valid("4475 §3.1.2.13", answer=400),
    "badaspec": Invalid("4475 §3.1.2.14"),
    # the archive copy lacks the empty line; with it the display names fail (test below)
    "baddn": Invalid("4475 §3.1.2.15"),
    "badvers": Invalid("4475 §3.1.2.16", status=505),
    "mismatch01": Invalid("4475 §3.1.2.17"),
    "mismatch02": Invalid("4475 §3.1.2.18"),
    "bigcode": Invalid("4475 §3.1.2.19", partial=False),   # a response
    # RFC 4475 §3.2 transaction layer
    "badbranch": Valid("4475 §3.2.1", answer=400),
    # RFC 4475 §3.3 application layer
    "insuf": Invalid("4475 §3.3.1"),
    "unkscm": Valid("4475 §3.3.2", answer=416),
    "novelsc": Valid("4475 §3.3.3", answer=416),
    # unknown schemes in To/From/Contact: well formed; the registrar decides (§8.2.2.1)
    "unksm2": Valid("4475 §3.3.4"),
    "bext01": Valid("4475 §3.3.5", answer=420),
    "invut": Valid("4475 §3.3.6", answer=415),
    # unknown authorization scheme: well formed; the registrar challenges (401)
    "regaut01": Valid("4475 §3.3.7"),
    "multi01": Invalid("4475 §3.3.8"),
    "mcl01": Invalid("4475 §3.3.9"),
    "bcast": Valid("4475 §3.3.10"),                        # a response
    # Max-Forwards 0 on OPTIONS: the server answers it itself (not 483)
    "zeromf": Valid("4475 §3.3.11"),
    "cparam01": Valid("4475 §3.3.12"),
    "cparam02": Valid("4475 §3.3.13"),
    "regescrt": Valid("4475 §3.3.14"),
    "sdp01": Valid("4475 §3.3.15", answer=406),
    "inv2543": Valid("4475 §3.3.16", roundtrip=ADD_CL),
    # RFC 5118 IPv6
    "rfc5118-ipv6-good": Valid("5118 §4.1"),
    # sip:2001:db8::10 without brackets: "db8::10" is no port
    "rfc5118-ipv6-bad": Invalid("5118 §4.2"),
    # [2001:db8::10:5070] is an address (no port): valid, port None
    "rfc5118-port-ambiguous": Valid("5118 §4.3"),
    "rfc5118-port-unambiguous": Valid("5118 §4.4"),
    # received= with and without brackets: both accepted
    "rfc5118-via-received-param-with-delim": Valid("5118 §4.5"),
    "rfc5118-via-received-param-no-delim": Valid("5118 §4.5"),
    "rfc5118-ipv6-in-sdp": Valid("5118 §4.6"),
    "rfc5118-mult-ip-in-header": Valid("5118 §4.7"),
    "rfc5118-mult-ip-in-sdp": Valid("5118 §4.8"),
    "rfc5118-ipv4-mapped-ipv6": Valid("5118 §4.9"),
    # "::" followed by ":" is no IPv6 address (RFC 5954 corrected the RFC 3261 ABNF): 400
    "rfc5118-ipv6-bug-abnf-3-colons": Invalid("5118 §4.10, RFC 5954"),
    "rfc5118-ipv6-correct-abnf-2-colons": Valid("5118 §4.10"),
}


def load(name: str) -> bytes:
    with open(os.path.join(DATA, name + ".dat"), "rb") as f:
        return f.read()


def expected_bytes(data: bytes, consumed: int, mode: str) -> bytes:
    message = data[:consumed]
    if mode == EXACT:
        return message
    end = message.index(b"\r\n\r\n")
    if mode == ADD_CL:
        body = message[end + 4:]
        return message[:end] + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    first = message.index(b"\r\n")
    return b" ".join(message[:first].split()) + message[first:]


class CorpusTests(SynchronousTestCase):
    def test_corpus_is_byte_exact(self):
        """Every file is in SHA256SUMS with its checksum, and every file has a table row."""
        sums = {}
        with open(os.path.join(DATA, "SHA256SUMS")) as f:
            for line in f:
                digest, name = line.split()
                sums[name] = digest
        files = sorted(n for n in os.listdir(DATA) if n.endswith(".dat"))
        self.assertEqual(sorted(sums), files)
        for name in files:
            with open(os.path.join(DATA, name), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), sums[name], name)
        self.assertEqual(sorted(TABLE), sorted(n[:-4] for n in files))


class TortureTests(SynchronousTestCase):
    def check_valid(self, name, row):
        data = load(name)
        msg, consumed = parse(data)
        self.assertEqual(consumed, row.consumed or len(data), name)
        body = msg.body
        self.assertEqual(data[consumed - len(body) - 4:consumed], b"\r\n\r\n" + body, name)
        if "content-length" in msg.headers:
            self.assertEqual(len(body), int(msg.headers.get("content-length")), name)
        self.assertEqual(msg.to_bytes(), expected_bytes(data, consumed, row.roundtrip), name)
        again, _ = parse(msg.to_bytes())
        self.assertEqual(again.to_bytes(), msg.to_bytes(), name)
        if isinstance(msg, Request):
            rejection = check_request(msg)
            self.assertEqual(rejection and rejection.status, row.answer, name)
            if rejection is not None:
                response = rejection.respond(msg, to_tag="t1")
                parsed, _ = parse(response.to_bytes())
                self.assertEqual(parsed.status, row.answer)
                self.assertEqual(parsed.to.tag, msg.to.tag or "t1")
        else:
            self.assertIsNone(row.answer)

    def check_invalid(self, name, row):
        data = load(name)
        with self.assertRaises(SIPParseError, msg=name) as caught:
            parse(data)
        error = caught.exception
        self.assertEqual(error.status, row.status, f"{name}: {error.reason}")
        self.assertTrue(error.reason)
        if not row.partial:
            self.assertIsNone(error.partial, name)
            return
        self.assertIsInstance(error.partial, Request, name)
        response = make_response(error.partial, error.status, error.phrase, to_tag="x1")
        wire = response.to_bytes()
        self.assertTrue(wire.startswith(b"SIP/2.0 %d " % row.status), name)
        top_via = data.split(b"\r\nVia:", 1)[1].split(b"\r\n", 1)[0].strip()
        self.assertIn(b"\r\nVia: " + top_via + b"\r\n", wire, name)
        self.assertNotIn(b"\r\n\r\n", wire[:-4], name)   # one header section, no body

    def test_table(self):
        for name, row in sorted(TABLE.items()):
            if isinstance(row, Valid):
                self.check_valid(name, row)
            else:
                self.check_invalid(name, row)

    def test_baddn_display_names(self):
        """§3.1.2.15 with the empty line restored: unquoted non-token display name, 400."""
        with self.assertRaises(SIPParseError) as caught:
            parse(load("baddn") + b"\r\n")
        self.assertEqual(caught.exception.status, 400)
        self.assertIn("display name", caught.exception.reason)
        self.assertIsNotNone(caught.exception.partial)

    def test_stream_framing(self):
        """Over a stream the same bytes frame by Content-Length; clerr waits for more."""
        self.assertRaises(Incomplete, parse, load("clerr"), stream=True)
        data = load("dblreq")
        first, used = parse(data, stream=True)
        self.assertEqual((first.method, used), ("REGISTER", 300))
        second, used2 = parse(data[used:], stream=True)
        self.assertEqual(second.method, "INVITE")
        self.assertEqual(data[used + used2:], b"C\r\n\r\n")    # noise: not a message
        self.assertRaises(SIPParseError, parse, data[used + used2:], stream=True)


class RobustnessTests(SynchronousTestCase):
    """Never crash on input: every truncation (step 7) and 40 seeded random edits of every
    corpus message, as datagram and as stream, give a message or SIPParseError/Incomplete;
    what parses serializes to bytes that parse to the same bytes again; every partial
    request and every check_request rejection can be answered. Bounded: about 6,600
    parses (well under a second)."""

    NOISE = b" \t\r\n:;,<>\"\\@[]%=0aZ\x00\xff/"

    def attempt(self, data: bytes, stream: bool) -> None:
        try:
            msg, _ = parse(data, stream=stream)
        except Incomplete:
            return
        except SIPParseError as e:
            self.assertIsInstance(e.status, int)
            if e.partial is not None:
                make_response(e.partial, e.status, e.phrase, to_tag="x").to_bytes()
            return
        wire = msg.to_bytes()
        self.assertEqual(parse(wire, stream=stream)[0].to_bytes(), wire)
        if isinstance(msg, Request):
            rejection = check_request(msg)
            if rejection is not None:
                rejection.respond(msg, "t").to_bytes()

    def test_truncations_and_edits(self):
        rng = random.Random(4475)
        for name in sorted(TABLE):
            data = load(name)
            for cut in range(0, len(data), 7):
                self.attempt(data[:cut], stream=bool(cut % 2))
            for _ in range(40):
                edited = bytearray(data)
                for _ in range(rng.randint(1, 6)):
                    i, op = rng.randrange(len(edited)), rng.random()
                    if op < 0.5:
                        edited[i] = rng.choice(self.NOISE)
                    elif op < 0.75:
                        edited.insert(i, rng.choice(self.NOISE))
                    else:
                        del edited[i]
                self.attempt(bytes(edited), stream=rng.random() < 0.3)


class SemanticsTests(SynchronousTestCase):
    """What the torture messages are about, beyond parse/no parse."""

    def test_wsinv(self):
        msg, _ = parse(load("wsinv"))
        self.assertEqual(msg.to.tag, "1918181833n")
        self.assertEqual(msg.from_.display, 'J Rosenberg \\"')
        self.assertEqual(msg.from_.tag, "98asjd8")
        self.assertEqual(msg.max_forwards, 68)
        self.assertEqual((msg.cseq.number, msg.cseq.method), (9, "INVITE"))
        self.assertEqual([(v.transport, v.host, v.branch) for v in msg.vias], [
            ("UDP", "192.0.2.2", "390skdjuw"),
            ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
            ("UDP", "192.168.255.111", "z9hG4bK30239")])
        self.assertEqual(msg.headers.get("subject"), "")
        self.assertEqual(msg.headers.get("newfangledheader"),
                         "newfangled value continued newfangled value")
        self.assertEqual(msg.headers.get("UnknownHeaderWithUnusualValue"), ";;,,;;,;")
        contact = msg.contacts[0]
        self.assertEqual(contact.display, 'Quoted string ""')
        self.assertEqual(contact.params, (("newparam", "newvalue"), ("secondparam", None),
                                          ("q", "0.33")))
        self.assertTrue(msg.uri.has_param("unknownparam"))

    def test_intmeth(self):
        msg, _ = parse(load("intmeth"))
        self.assertEqual(msg.method, "!interesting-Method0123456789_*+`.%indeed'~")
        self.assertEqual(msg.uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        self.assertEqual(msg.uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        self.assertEqual(msg.headers.get("extensionHeader-!.%*+_`'~"),
                         "\ufeff大停電")
        self.assertEqual(msg.body, b"")

    def test_escapes(self):
        msg, _ = parse(load("esc01"))
        self.assertEqual(msg.uri.number, "sips:user@example.com")
        self.assertEqual(msg.uri.host, "example.net")
        self.assertEqual(msg.to.uri.number, "user")
        self.assertEqual(msg.from_.uri.number, "I have spaces")
        null, _ = parse(load("escnull"))
        self.assertEqual(null.to.uri.number, "null-\x00-null")
        self.assertEqual([c.uri.user for c in null.contacts], ["%00", "%00%00"])
        esc2, _ = parse(load("esc02"))
        self.assertEqual(esc2.method, "RE%47IST%45R")
        self.assertEqual(esc2.to.display, "%Z%45")

    def test_semiuri(self):
        msg, _ = parse(load("semiuri"))
        self.assertEqual(msg.uri.user, "user;par=u%40example.net")
        self.assertEqual(msg.uri.host, "example.com")
        self.assertEqual(msg.uri.number, "user")

    def test_transports_and_longreq(self):
        msg, _ = parse(load("transports"))
        self.assertEqual([v.transport for v in msg.vias], ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"])
        long, _ = parse(load("longreq"))
        self.assertEqual(len(long.vias), 34)
        self.assertEqual(long.to.uri.port, 6000)

    def test_reason_phrases(self):
        msg, _ = parse(load("unreason"))
        self.assertIsInstance(msg, Response)
        self.assertEqual(msg.reason, "= 2**3 * 5**2 но сто девяносто девять - простое")
        empty, _ = parse(load("noreason"))
        self.assertEqual((empty.status, empty.reason), (100, ""))

    def test_bext01_unsupported(self):
        msg, _ = parse(load("bext01"))
        rejection = check_request(msg)
        self.assertEqual(dict(rejection.headers)["Unsupported"],
                         "nothingSupportsThis, nothingSupportsThisEither, "
                         "noProxiesSupportThis, norDoAnyProxiesSupportThis")
        self.assertIsNone(check_request(msg, supported={
            "nothingsupportsthis", "nothingsupportsthiseither", "noproxiessupportthis",
            "nordoanyproxiessupportthis"}))

    def test_zeromf(self):
        msg, _ = parse(load("zeromf"))
        self.assertEqual(msg.max_forwards, 0)
        self.assertIsNone(check_request(msg))
        msg.method = "INVITE"        # the same request to be forwarded: 483
        self.assertEqual(check_request(msg).status, 483)
        self.assertIsNone(check_request(msg, local=True))

    def test_ipv6(self):
        good, _ = parse(load("rfc5118-ipv6-good"))
        self.assertEqual(good.uri.host, "[2001:db8::10]")
        amb, _ = parse(load("rfc5118-port-ambiguous"))
        self.assertEqual((amb.uri.host, amb.uri.port), ("[2001:db8::10:5070]", None))
        unamb, _ = parse(load("rfc5118-port-unambiguous"))
        self.assertEqual((unamb.uri.host, unamb.uri.port), ("[2001:db8::10]", 5070))
        with_delim, _ = parse(load("rfc5118-via-received-param-with-delim"))
        self.assertEqual(with_delim.top_via.param("received"), "[2001:db8::9:255]")
        no_delim, _ = parse(load("rfc5118-via-received-param-no-delim"))
        self.assertEqual(no_delim.top_via.param("received"), "2001:db8::9:255")
        mapped, _ = parse(load("rfc5118-ipv4-mapped-ipv6"))
        self.assertEqual(mapped.top_via.host, "[::ffff:192.0.2.10]")
        two, _ = parse(load("rfc5118-ipv6-correct-abnf-2-colons"))
        self.assertEqual(two.uri.host, "[2001:db8::192.0.2.1]")
        multi, _ = parse(load("rfc5118-mult-ip-in-header"))
        self.assertEqual([v.host for v in multi.vias],
                         ["[2001:db8::9:1]", "192.0.2.1", "[2001:db8::9:255]"])
