"""Request bodies read within a size limit, gzip/deflate decoded, chunked or not.

https://hl7.org/fhir/R4/http.html#general -- FHIR bodies can be large (a Synthea patient
Bundle is 3 to 20 MB), so the limit is a setting (FHIR_MAX_BODY_BYTES) answered with 413.
`Content-Encoding: gzip` (or deflate) bodies are decompressed a piece at a time and the
limit applies to the decompressed size, so a gzip bomb stops at the limit with flat memory.
A chunked body (no Content-Length) is read to its end when the server decodes chunks for
us (gunicorn marks that with `wsgi.input_terminated`, per the WSGI convention).
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest

from fhir_api.store.errors import BadRequest, LengthRequired, PayloadTooLarge, UnsupportedMediaType

_PIECE = 64 * 1024
# wbits for zlib: 16 + MAX_WBITS reads the gzip wrapper, MAX_WBITS the zlib (deflate) one.
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def read_body(request: HttpRequest) -> bytes:
    """The decoded body, read once and kept on the request (also as `request.body`)."""
    cached = getattr(request, "_fhir_body", None)
    if cached is not None:
        return cached
    if hasattr(request, "_body"):  # read already (Django test requests built with a body)
        raw_pieces: Iterator[bytes] = iter([request._body])
    else:
        raw_pieces = _wire_pieces(request)
    data = _decode(request, raw_pieces)
    request._fhir_body = data
    request._body = data  # for anything reading request.body later
    return data


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than this server's limit of {limit} bytes (FHIR_MAX_BODY_BYTES)"
    )


def _wire_pieces(request: HttpRequest) -> Iterator[bytes]:
    """The body as sent, a piece at a time, never more than the limit (+1 byte to tell)."""
    limit = settings.FHIR_MAX_BODY_BYTES
    meta = request.META
    length_header = meta.get("CONTENT_LENGTH") or ""
    if length_header.strip():
        try:
            length = int(length_header)
        except ValueError:
            raise BadRequest(f"Content-Length {length_header} is not a number") from None
        if length > limit:
            raise _too_large(limit)
        stream_read = request.read  # Django's stream stops at Content-Length
    elif "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        if not meta.get("wsgi.input_terminated"):
            # This server cannot tell where the body ends (Django's development server):
            # reading on would wait for the client forever.
            raise LengthRequired("A chunked request body needs a server that decodes chunks (make serve);"
                                 " send a Content-Length")
        stream = meta["wsgi.input"]
        request._read_started = True
        stream_read = stream.read
        length = limit + 1
    else:
        return
    seen = 0
    while seen < length:
        piece = stream_read(min(_PIECE, length - seen))
        if not piece:
            break
        seen += len(piece)
        if seen > limit:
            raise _too_large(limit)
        yield piece


def _decode(request: HttpRequest, pieces: Iterator[bytes]) -> bytes:
    limit = settings.FHIR_MAX_BODY_BYTES
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("", "identity"):
        data = b"".join(pieces)
        if len(data) > limit:
            raise _too_large(limit)
        return data
    if encoding not in _DECODERS:
        raise UnsupportedMediaType(f"Content-Encoding {encoding} is not supported (use gzip or deflate)")
    decoder = zlib.decompressobj(_DECODERS[encoding])
    out: list[bytes] = []
    size = 0
    try:
        for piece in pieces:
            while piece:
                # max_length bounds what one call may produce: a bomb never inflates past the limit
                chunk = decoder.decompress(piece, limit - size + 1)
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"The decompressed request body is larger than this server's limit of {limit} bytes"
                        " (FHIR_MAX_BODY_BYTES)"
                    )
                out.append(chunk)
                piece = decoder.unconsumed_tail
        tail = decoder.flush()
    except zlib.error as exc:
        raise BadRequest(f"The request body is not valid {encoding} data: {exc}", code="structure") from None
    if not decoder.eof:
        raise BadRequest(f"The {encoding} request body is truncated", code="structure")
    if size + len(tail) > limit:
        raise _too_large(limit)
    out.append(tail)
    return b"".join(out)
