"""TOTP secrets sealed at rest: AES-256-GCM under a key file created 0600 on first use, bound
to the row it belongs to; a replaced key or a damaged value is a clear error, never a wrong
secret; values stored before sealing still open."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from soc.auth.sealing import SealError, SecretSealer, is_sealed

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _at_once(calls: list[Callable[[], str]]) -> list[str]:
    """Each call on its own thread, all released together; their results."""
    barrier = threading.Barrier(len(calls))
    results: list[str] = []

    def run(call: Callable[[], str]) -> None:
        barrier.wait()
        results.append(call())

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_seal_and_open_with_a_key_created_private(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "secret.key"
    sealed = SecretSealer(key).seal(SECRET, "totp:ana")
    assert is_sealed(sealed) and SECRET not in sealed
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(base64.b64decode(key.read_bytes().strip())) == 32
    # Another process (a new sealer on the same file) opens it; a new nonce each time.
    assert SecretSealer(key).open(sealed, "totp:ana") == SECRET
    assert SecretSealer(key).seal(SECRET, "totp:ana") != sealed
    assert [p.name for p in key.parent.iterdir()] == ["secret.key"]  # no temporary left


def test_a_value_moved_to_another_row_or_damaged_does_not_open(tmp_path: Path) -> None:
    sealer = SecretSealer(tmp_path / "secret.key")
    sealed = sealer.seal(SECRET, "totp:ana")
    with pytest.raises(SealError, match="not this row's"):
        sealer.open(sealed, "totp:bob")
    version, key_id, body = sealed.split(":")
    flipped = body[:-6] + ("A" if body[-6] != "A" else "B") + body[-5:]
    with pytest.raises(SealError, match="damaged"):
        sealer.open(f"{version}:{key_id}:{flipped}", "totp:ana")
    with pytest.raises(SealError, match="without its key id"):
        sealer.open("v1:only-one-part", "totp:ana")


def test_a_replaced_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    sealed = SecretSealer(key).seal(SECRET, "totp:ana")
    key.unlink()
    SecretSealer(key).seal(SECRET, "totp:bob")  # a new key (this store may make one)
    with pytest.raises(SealError, match=r"sealed with key [0-9a-f]{16}, but .*secret\.key "
                                        r"holds key [0-9a-f]{16} \(was the key file replaced"):
        SecretSealer(key).open(sealed, "totp:ana")


def test_a_missing_key_is_never_made_by_open_nor_once_something_was_sealed(
        tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    sealed = SecretSealer(key).seal(SECRET, "totp:ana")
    key.unlink()  # an unmounted volume, a restore without the key
    with pytest.raises(SealError, match=r"secret\.key is missing: restore it. If it is lost, "
                                        r"create a new one \(`head -c 32 /dev/urandom"):
        SecretSealer(key).open(sealed, "totp:ana")
    with pytest.raises(SealError, match="is missing"):
        SecretSealer(key, may_create=lambda: False).seal(SECRET, "totp:bob")
    assert not key.exists()


def test_threads_opening_at_once_all_use_the_whole_key(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    sealed = SecretSealer(key).seal(SECRET, "totp:ana")
    sealer = SecretSealer(key)  # a fresh process: the key is loaded by whichever thread is first
    assert _at_once([partial(sealer.open, sealed, "totp:ana")] * 16) == [SECRET] * 16


def test_a_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    key.write_text("not base64 at all!\n")
    with pytest.raises(SealError, match="not a secret key"):
        SecretSealer(key).seal(SECRET, "totp:ana")
    key.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(SealError, match="expected 32 bytes"):
        SecretSealer(key).seal(SECRET, "totp:ana")


def test_a_value_stored_before_sealing_opens_as_it_is(tmp_path: Path) -> None:
    assert SecretSealer(tmp_path / "secret.key").open(SECRET, "totp:ana") == SECRET


def test_processes_racing_to_create_the_key_agree_on_one(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    sealers = [SecretSealer(key) for _ in range(8)]
    sealed = _at_once([partial(sealer.seal, SECRET, "totp:ana") for sealer in sealers])
    assert len({value.split(":")[1] for value in sealed}) == 1
    assert all(SecretSealer(key).open(value, "totp:ana") == SECRET for value in sealed)
