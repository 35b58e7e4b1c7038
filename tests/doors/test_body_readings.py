"""Search bodies are read every way an upstream might read them, or refused.

Each case here was a way past the rules found by running real upstreams behind the proxy
(Flask/Werkzeug reads a form as UTF-8 whatever charset it declares, ignores a multipart
part's transfer encoding, takes the last of a repeated parameter, reads JSON with a byte
order mark or in UTF-16). A body that no reading makes sense of is refused (415), never
forwarded unread.
"""

from __future__ import annotations

import base64

import pytest

from intercept.config import Route
from intercept.extract import CompiledRoute, UnreadableBody, texts_from_body

ROUTE = CompiledRoute(Route(name="search", path="/search", params=("q",), form_fields=("q",),
                            json_pointers=("/q",)), None)  # fmt: skip
FORM = "application/x-www-form-urlencoded"
QUERY = "blocked example"


def multipart(part_headers: bytes, payload: bytes, boundary: bytes = b"XX") -> bytes:
    return (b"--" + boundary + b"\r\n" + part_headers + b"\r\n" + payload + b"\r\n--"
            + boundary + b"--\r\n")  # fmt: skip


def named_q(extra: bytes = b"") -> bytes:
    return b'Content-Disposition: form-data; name="q"\r\n' + extra


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (FORM, b"q=blocked+example"),
        # the declared charset, and UTF-8 as frameworks that ignore it read the same bytes
        (FORM + "; charset=utf-16", b"q=blocked+example"),
        (FORM + "; charset=utf-7", b"q=blocked+example"),
        (FORM + "; charset=cp500", b"q=blocked+example"),
        (FORM + "; charset=utf-16-le", "q=blocked example".encode("utf-16-le")),
        (FORM + "; charset=cp500", "q=blocked example".encode("cp500")),
        # a transfer encoding applied, and not applied
        ("multipart/form-data; boundary=XX",
         multipart(named_q(b"Content-Transfer-Encoding: base64\r\n"), QUERY.encode())),
        ("multipart/form-data; boundary=XX",
         multipart(named_q(b"Content-Transfer-Encoding: base64\r\n"),
                   base64.b64encode(QUERY.encode()))),
        ("multipart/form-data; boundary=XX",
         multipart(named_q(b"Content-Type: text/plain; charset=utf-16\r\n"), QUERY.encode())),
        # the first name for one parser, the last for another; PHP's q[]
        ("multipart/form-data; boundary=XX",
         multipart(b'Content-Disposition: form-data; name="x"; name="q"\r\n', QUERY.encode())),
        ("multipart/form-data; boundary=XX",
         multipart(b'Content-Disposition: form-data; name="q[]"\r\n', QUERY.encode())),
        # RFC 2231 names and quoted pairs, as Werkzeug reads them
        *[("multipart/form-data; boundary=XX",
           multipart(b"Content-Disposition: form-data; " + name + b"\r\n", QUERY.encode()))
          for name in (b"name*=UTF-8''q", b"name*=UTF-8''%71", b'name*0="q"', b'name="\\q"')],
        # a repeated header: the first for one parser, the last for another (Starlette)
        ("multipart/form-data; boundary=XX",
         multipart(b'Content-Disposition: form-data; name="x"\r\n' + named_q(), QUERY.encode())),
        # percent-escapes stand for bytes in the declared charset (Express's body-parser)
        (FORM + "; charset=iso-8859-1", b"q=bl%F6cked+example"),
        # JSON as json.loads reads bytes, with or without a UTF-8 byte order mark
        ("application/json", b'\xef\xbb\xbf{"q": "blocked example"}'),
        ("application/json", '{"q": "blocked example"}'.encode("utf-16")),
        ("application/json", '{"q": "blocked example"}'.encode("utf-32-le")),
        ("application/json; charset=latin-1", '{"q": "blocked example"}'.encode("latin-1")),
    ],
)  # fmt: skip
def test_every_reading_is_searched(content_type: str, body: bytes) -> None:
    texts = texts_from_body(ROUTE, content_type, body)
    assert QUERY in texts or "blöcked example" in texts


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        # not text encodings, or none that can read these bytes: never a 500
        *[(FORM + f"; charset={codec}", b"q=blocked+example")
          for codec in ("rot13", "hex", "base64", "zlib", "nope")],
        (FORM + "; charset=idna", "q=blöcked".encode()),
        ("multipart/form-data; boundary=XX",
         multipart(named_q(b"Content-Type: text/plain; charset=rot13\r\n"), QUERY.encode())),
        # a search field holding a whole message: no browser sends one, parsers disagree
        ("multipart/form-data; boundary=XX",
         multipart(named_q(b"Content-Type: message/rfc822\r\n"), QUERY.encode())),
        # two boundaries: one parser splits on the first, another on the last
        ("multipart/form-data; boundary=XX; boundary=YY",
         multipart(named_q(), QUERY.encode(), boundary=b"YY")),
        # part headers this parser cannot read, which others do
        ("multipart/form-data; boundary=XX",
         multipart(b'Content-Disposition : form-data; name="q"\r\n', QUERY.encode())),
        ("multipart/form-data; boundary=XX",
         multipart(b'junk line\r\nContent-Disposition: form-data; name="q"\r\n', QUERY.encode())),
        # charsets that are no name at all, or too many readings to make
        ("multipart/form-data; boundary=XX",
         multipart(named_q(b"Content-Type: text/plain; charset=\xff\r\n"), QUERY.encode())),
        (FORM + "; charset=utf\x00-8", b"q=blocked+example"),
        (FORM + "".join(f"; charset={c}" for c in ("cp500", "cp037", "latin-1", "koi8-r",
                                                   "cp1251")), b"q=blocked+example"),
        ("application/json", b'{"q": "blocked example"'),
        ("application/json", b"\xff\xfe\x00"),
    ],
)  # fmt: skip
def test_unreadable_bodies_are_refused(content_type: str, body: bytes) -> None:
    with pytest.raises(UnreadableBody):
        texts_from_body(ROUTE, content_type, body)


def test_other_types_and_other_fields_yield_nothing() -> None:
    assert texts_from_body(ROUTE, "application/json", b"") == []
    assert texts_from_body(ROUTE, "application/json", b" \r\n") == []
    assert texts_from_body(ROUTE, "text/plain", b"q=blocked+example") == []
    assert texts_from_body(ROUTE, FORM, b"other=blocked+example") == []
    other = multipart(b'Content-Disposition: form-data; name="file"\r\n'
                      b"Content-Type: message/rfc822\r\n", b"Subject: x\r\n\r\nhello")  # fmt: skip
    assert texts_from_body(ROUTE, "multipart/form-data; boundary=XX", other) == []
