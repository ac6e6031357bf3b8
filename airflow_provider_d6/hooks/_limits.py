"""Bounds on what one d6 answer may cost: pages that loop, bodies that never end or explode.

Shared by the sync and async hooks. A malicious, broken or man-in-the-middle d6 must not make a
task (or the triggerer, which hosts every deferred task) run forever, fill the memory or fill the
disk: a cursor that repeats is an error, one answer's decoded body is capped, and each request
has a total deadline (see the hooks' I/O).
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, NoReturn

from airflow_provider_d6.exceptions import D6ResponseError

# d6's largest page is 50 records of a few kilobytes each (CONTRACT §2: max_allowed_limit 50 in
# the examples); unpaginated lookups are smaller. 32 MiB is far above any real answer and far
# below what would hurt a worker.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# Bytes read per step while streaming a body, so that the cap and the deadline are checked often.
CHUNK_BYTES = 64 * 1024
# What the hooks ask d6 to compress with, and all that BodyReader decodes (no brotli, no zstd:
# one decoder, with a bound on its output, for both hooks).
ACCEPT_ENCODING = "gzip, deflate"
# A page with no records but a next_cursor is odd but possible (records deleted between pages);
# this many in a row is a server walking nowhere.
MAX_EMPTY_PAGES = 10
# An opaque cursor longer than this is not a cursor.
MAX_CURSOR_CHARS = 4096
# A walk that never repeats a cursor can still never end (a server inventing new ones): no d6
# collection comes near this many pages (a large school's year of financial transactions is a
# few thousand), and it bounds an export's file at this many pages' worth of records.
MAX_PAGES = 50_000


class CursorGuard:
    """Follow one paginated walk and refuse a cursor that loops or leads nowhere.

    :param endpoint: the endpoint's name, for the error
    :param url: the request URL, for the error
    """

    def __init__(self, endpoint: str, url: str) -> None:
        self._endpoint = endpoint
        self._url = url
        self._seen: set[bytes] = set()
        self._empty = 0
        self._max_pages = MAX_PAGES

    def next_cursor(self, cursor: Any, records: int) -> str | None:
        """Return the cursor of the next page (None at the end), or raise ``D6ResponseError``.

        :param cursor: ``meta.next_cursor`` of the page just read
        :param records: how many records that page held
        """
        if not cursor:  # None, "" (and a 0 or false from a broken d6): the last page
            return None
        if cursor.__class__ is int:
            cursor = str(cursor)
        if cursor.__class__ is not str or len(cursor) > MAX_CURSOR_CHARS:
            self._fail(f"a next_cursor that is not a short string ({type(cursor).__name__})")
        digest = hashlib.blake2b(cursor.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if digest in self._seen:
            self._fail(
                f"a next_cursor already followed, after {len(self._seen) + 1} pages (they loop)"
            )
        if len(self._seen) + 1 >= self._max_pages:
            self._fail(
                f"a next_cursor after {len(self._seen) + 1:,} pages, the most one walk reads"
            )
        self._seen.add(digest)
        self._empty = self._empty + 1 if records == 0 else 0
        if self._empty >= MAX_EMPTY_PAGES:
            self._fail(f"{self._empty} empty pages in a row, each with a next_cursor")
        text: str = cursor
        return text

    def _fail(self, what: str) -> NoReturn:
        raise D6ResponseError(
            f"while listing {self._endpoint}, d6 sent {what}; stopped so as not to loop forever",
            method="GET",
            url=self._url,
        )


class BodyTooLarge(D6ResponseError):
    """One answer's decoded body exceeded ``max_response_bytes``."""


def too_large(limit: int, *, method: str, url: str, declared: int | None = None) -> BodyTooLarge:
    """Return the error for an answer larger than *limit* bytes once decoded."""
    said = f" (it declared {declared:,} bytes)" if declared is not None else ""
    when = "before reading it" if declared is not None else "while reading"
    return BodyTooLarge(
        f"d6's answer is larger than max_response_bytes={limit:,} once decoded{said}; refused "
        f"{when}. Raise max_response_bytes in the connection if d6 really sends that much",
        method=method,
        url=url,
    )


def declared_length(headers: Any) -> int | None:
    """Return the Content-Length of an uncompressed answer, when it is a plain integer."""
    if headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return None
    value = (headers.get("Content-Length") or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 20 else None


class AnswerTimeout(TimeoutError):
    """The whole answer (headers and body) did not arrive within the connection's ``timeout``."""


class BodyReader:
    """Collect one answer's body as it streams in, decoded, refusing it past *limit* bytes.

    Both hooks read the raw (still compressed) bytes and feed them here: gzip and deflate are
    decoded with a bound on each step's output, so a small compressed body that expands to
    gigabytes (a "zip bomb") is refused after at most *limit* plus one step of decoded bytes,
    and a plain body is refused as soon as it passes *limit*, or at once when its
    ``Content-Length`` says it will.

    :param headers: the answer's headers (case-insensitive mapping)
    :param limit: ``max_response_bytes``
    :param method: the request method, for the error
    :param url: the request URL, for the error
    """

    __slots__ = ("_chunks", "_decoder", "_encoding", "_head", "_limit", "_method", "_size", "_url")

    def __init__(self, headers: Any, limit: int, *, method: str, url: str) -> None:
        self._limit = limit
        self._method = method
        self._url = url
        self._chunks: list[bytes] = []
        self._size = 0
        self._head = b""
        declared = declared_length(headers)
        if declared is not None and declared > limit:
            raise too_large(limit, method=method, url=url, declared=declared)
        encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "x-gzip":
            encoding = "gzip"
        if encoding not in ("identity", "", "gzip", "deflate"):
            raise D6ResponseError(
                f"d6 answered with Content-Encoding {encoding[:40]!r}, which the hook did not "
                f"ask for (it accepts {ACCEPT_ENCODING})",
                method=method,
                url=url,
            )
        self._encoding = encoding
        self._decoder: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None

    @property
    def size(self) -> int:
        """Return how many decoded bytes have been kept so far."""
        return self._size

    def feed(self, data: bytes) -> None:
        """Add one raw chunk of the body; raise ``BodyTooLarge`` once past the limit."""
        if not data:
            return
        if self._encoding == "deflate" and self._decoder is None:
            # "deflate" is zlib-wrapped by the standard and raw deflate by some servers: the
            # first two bytes tell them apart (a zlib header is a multiple of 31).
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        if self._decoder is None:
            self._keep(data)
            return
        try:
            while data:
                decoder = self._decoder
                # Never more than one byte past the limit per step: the cap bounds the output.
                self._keep(decoder.decompress(data, self._limit - self._size + 1))
                data = decoder.unconsumed_tail
                if decoder.eof:
                    data = decoder.unused_data
                    if not data or self._encoding != "gzip":
                        break
                    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the next member
        except zlib.error:
            raise D6ResponseError(
                f"d6's {self._encoding}-encoded answer could not be decompressed",
                method=self._method,
                url=self._url,
            ) from None

    def finish(self) -> bytes:
        """Return the whole decoded body."""
        if self._head:  # a one-byte "deflate" body: no decoder can read that
            raise D6ResponseError(
                "d6's deflate-encoded answer could not be decompressed",
                method=self._method,
                url=self._url,
            )
        body = b"".join(self._chunks)
        self._chunks = [body]
        return body

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self._chunks = []
            raise too_large(self._limit, method=self._method, url=self._url)
        if data:
            self._chunks.append(data)
