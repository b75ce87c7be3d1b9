"""The content-coding decoder as a parsing rule: whatever the body and however it arrives in
pieces, it decodes to what was compressed, refuses past the limit, and refuses anything that
is not a stream of its coding with a named 4xx, never another error."""

from __future__ import annotations

import gzip
import zlib
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstitch.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from eventstitch.ingest.encodings import BodyDecoder, decode, encoding_of


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw deflate": raw_deflate,
}


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=4000),
    encoder=st.sampled_from(sorted(ENCODERS)),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=6),
    limit=st.integers(min_value=1, max_value=5000),
)
def test_any_body_in_any_pieces_decodes_or_is_refused_at_the_limit(
    body: bytes, encoder: str, cuts: list[int], limit: int
) -> None:
    sent = ENCODERS[encoder](body)
    decoder = BodyDecoder("gzip" if encoder == "gzip" else "deflate", limit)
    bounds = sorted({0, len(sent), *(c % (len(sent) + 1) for c in cuts)})

    def decoded() -> bytes:
        out = b"".join(decoder.feed(sent[a:b]) for a, b in pairwise(bounds))
        decoder.finish()
        return out

    if len(body) > limit:
        with pytest.raises(PayloadTooLarge) as refused:
            decoded()
        assert refused.value.errors[0]["limit"] == limit
    else:
        assert decoded() == body


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(min_size=1, max_size=300), coding=st.sampled_from(["gzip", "deflate"]))
def test_bytes_that_are_not_a_stream_are_a_named_400(junk: bytes, coding: str) -> None:
    problem: BadRequest | PayloadTooLarge | None = None
    try:
        decode(junk, coding, 10_000)
    except (BadRequest, PayloadTooLarge) as refused:
        # Random bytes can be a valid raw deflate stream, even one past the limit.
        problem = refused
    if isinstance(problem, BadRequest):
        assert problem.reason == "bad_content_encoding"
        assert problem.errors[0]["content-encoding"] == coding


@pytest.mark.parametrize("header", ["br", "compress", "gzip, gzip", "gzip,deflate", "zstd", "*"])
def test_any_other_coding_is_415(header: str) -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        encoding_of(header)
    assert refused.value.errors == [{"field": "content-encoding", "value": header}]


@pytest.mark.parametrize(
    ("header", "coding"),
    [(None, None), ("", None), ("identity", None), (" GZIP ", "gzip"), ("x-gzip", "gzip")],
)
def test_the_codings_read(header: str | None, coding: str | None) -> None:
    assert encoding_of(header) == coding
