"""Stream framing: newline and RFC 6587 octet counting, auto-detection, cutting, and the byte
accounting (every byte fed is in a frame, a delimiter, a length header, or counted discarded)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.sources.syslog.framing import Frame, FrameDecoder


def decode(chunks: list[bytes], max_bytes: int = 100, framing: str = "auto"
           ) -> tuple[list[Frame], FrameDecoder]:
    decoder = FrameDecoder(max_bytes, framing)  # type: ignore[arg-type]
    frames: list[Frame] = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    frames += decoder.close()
    return frames, decoder


def accounted(decoder: FrameDecoder) -> int:
    return (decoder.frame_bytes + decoder.delimiter_bytes + decoder.header_bytes
            + decoder.discarded_bytes + decoder.pending_bytes())


def test_newline_frames_with_crlf_and_blank_lines() -> None:
    stream = b"<13>a\r\n\n<13>b\n<13>c"
    frames, decoder = decode([stream])
    assert [f.data for f in frames] == [b"<13>a", b"<13>b", b"<13>c"]
    assert decoder.framing == "newline" and accounted(decoder) == len(stream)
    assert decoder.delimiter_bytes == 4


def test_octet_counting_detected_and_split_across_chunks() -> None:
    stream = b"11 <13>a b c d8 <13>x yz"
    frames, decoder = decode([stream[i:i + 3] for i in range(0, len(stream), 3)])
    assert [f.data for f in frames] == [b"<13>a b c d", b"<13>x yz"]
    assert decoder.framing == "octet_counting" and decoder.errors == 0


def test_overlong_newline_line_is_cut_marked_and_the_rest_skipped() -> None:
    frames, decoder = decode([b"x" * 250 + b"\n<13>next\n"], max_bytes=100)
    assert [(len(f.data), f.truncated) for f in frames] == [(100, True), (8, False)]
    assert decoder.discarded_bytes == 150 and decoder.truncated == 1


def test_overlong_octet_frame_is_cut_and_the_framing_keeps_its_place() -> None:
    body = b"<13>" + b"y" * 196
    frames, decoder = decode([b"200 " + body[:120], body[120:] + b"6 <13>ok"], max_bytes=100)
    assert [(f.data, f.truncated) for f in frames] == [(body[:100], True), (b"<13>ok", False)]
    assert decoder.discarded_bytes == 100 and decoder.errors == 0


def test_malformed_length_falls_back_to_newline_and_loses_nothing() -> None:
    frames, decoder = decode([b"5 <13>abc\nnot octets\n"])
    # "5 <13>" is a frame; "abc\nnot octets\n" then has no valid length: newline framing
    assert [f.data for f in frames] == [b"<13>a", b"bc", b"not octets"]
    assert decoder.errors == 1 and decoder.framing == "newline"


def test_trailer_newline_at_a_chunk_end_keeps_octet_counting() -> None:
    """Regression: a sender's "\\n" after an octet frame, arriving alone at the end of a read,
    emptied the buffer and flipped the connection to newline framing (and counted an error)."""
    frames, decoder = decode([b"6 <13>ab\n", b"6 <13>cd\n"])
    assert [f.data for f in frames] == [b"<13>ab", b"<13>cd"]
    assert decoder.framing == "octet_counting" and decoder.errors == 0


def test_auto_detection_waits_when_a_read_ends_after_the_length_space() -> None:
    """Regression: "12 " at the end of the first read was decided as newline framing."""
    frames, decoder = decode([b"12 ", b"<13>abcdefgh"])
    assert [f.data for f in frames] == [b"<13>abcdefgh"]
    assert decoder.framing == "octet_counting"


def test_line_of_exactly_max_bytes_split_before_its_crlf_is_not_truncated() -> None:
    """Regression: a line of exactly `max` bytes whose "\\r" ended one read and "\\n" began the
    next was cut and marked truncated; it fits."""
    frames, _ = decode([b"a" * 100 + b"\r", b"\nb\n"], max_bytes=100)
    assert [(len(f.data), f.truncated) for f in frames] == [(100, False), (1, False)]


def test_short_last_octet_frame_is_kept_truncated_and_counted() -> None:
    frames, decoder = decode([b"50 <13>only part"])
    assert [(f.data, f.truncated) for f in frames] == [(b"<13>only part", True)]
    assert decoder.errors == 1 and accounted(decoder) == 16


# -- properties --------------------------------------------------------------------------------

def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


noisy = st.one_of(
    st.binary(max_size=600),
    st.lists(st.sampled_from([b"\n", b"\r", b"\r\n", b" ", b"<13>", b"12 ", b"0 ", b"5 <",
                              b"99999999999 ", b"x" * 40, b"abc", b"\x00", b"7"]),
             max_size=60).map(b"".join),
)


@settings(max_examples=2000, deadline=None)
@given(data=noisy, cuts=st.lists(st.integers(0, 700), max_size=12),
       max_bytes=st.integers(1, 64), framing=st.sampled_from(["auto", "newline",
                                                              "octet_counting"]))
def test_every_byte_is_accounted_for_and_chunking_does_not_matter(data, cuts, max_bytes,
                                                                   framing) -> None:
    """frame + delimiter + header + discarded bytes == input length, however the input is cut
    into reads; the frames are the same as from one read; no frame is empty or over the limit."""
    whole, reference = decode([data], max_bytes, framing)
    frames, decoder = decode(chunked(data, cuts), max_bytes, framing)
    assert accounted(decoder) == len(data) == accounted(reference)
    assert decoder.pending_bytes() == 0
    assert sum(len(f.data) for f in frames) == decoder.frame_bytes
    assert [(f.data, f.truncated) for f in frames] == [(f.data, f.truncated) for f in whole]
    assert all(0 < len(f.data) <= max_bytes for f in frames)
    assert decoder.truncated == sum(f.truncated for f in frames)


messages = st.lists(st.binary(min_size=1, max_size=80).map(lambda b: b"<13>" + b), max_size=20)


@settings(max_examples=500, deadline=None)
@given(msgs=messages, cuts=st.lists(st.integers(0, 2000), max_size=10),
       trailer=st.sampled_from([b"", b"\n", b"\r\n"]))
def test_octet_counted_messages_come_back_exactly(msgs, cuts, trailer) -> None:
    """Any bytes, newlines included, survive octet counting (trailing CR/LF aside)."""
    stream = b"".join(str(len(m)).encode() + b" " + m + trailer for m in msgs)
    frames, decoder = decode(chunked(stream, cuts), max_bytes=1000)
    assert [f.data for f in frames] == [m.rstrip(b"\r\n") for m in msgs if m.rstrip(b"\r\n")]
    assert decoder.errors == 0 and not any(f.truncated for f in frames)


@settings(max_examples=500, deadline=None)
@given(lines=st.lists(st.binary(min_size=1, max_size=80).filter(
    lambda b: b"\n" not in b and not b.endswith(b"\r") and b[:1] != b"\r"), max_size=20),
    cuts=st.lists(st.integers(0, 2000), max_size=10))
def test_newline_framed_lines_come_back_exactly(lines, cuts) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    frames, _ = decode(chunked(stream, cuts), max_bytes=1000, framing="newline")
    assert [f.data for f in frames] == lines
