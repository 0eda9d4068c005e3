"""The JSON nesting bound: measured without recursion, exactly at the limit."""

from __future__ import annotations

import gzip
import time

import pytest

from collector.sources.http.bodies import BadEncoding, inflate_gzip
from core.nesting import nesting_over


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [1, 2, 63, 64])
def test_within_the_limit(depth: int) -> None:
    assert not nesting_over(nested(depth), 64)
    assert not nesting_over(["x", {"a": [1]}], 64)


def test_past_the_limit_even_far_past_the_recursion_limit() -> None:
    assert nesting_over(nested(65), 64)
    assert nesting_over({"a": [[]]}, 2)
    assert nesting_over(nested(50_000), 64)
    assert not nesting_over("scalar", 1)


def test_empty_gzip_members_inflate_in_linear_time_and_are_bounded() -> None:
    bomb = gzip.compress(b"") * 200_000
    started = time.monotonic()
    assert inflate_gzip(bomb, 1 << 20, max_members=10**9) == b""
    assert time.monotonic() - started < 5
    with pytest.raises(BadEncoding, match="more than 1000 members"):
        inflate_gzip(bomb, 1 << 20, max_members=1000)
