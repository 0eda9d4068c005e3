"""TOTP secrets sealed at rest: AES-256-GCM under a key file created 0600 on first use, bound
to the row it belongs to; a replaced key or a damaged value is a clear error, never a wrong
secret; values stored before sealing still open."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest

from collector.auth.sealing import SealError, SecretSealer, is_sealed

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


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
    with pytest.raises(SealError, match=r"sealed with key [0-9a-f]{16}, but .*secret\.key "
                                        r"holds key [0-9a-f]{16} \(was the key file replaced"):
        SecretSealer(key).open(sealed, "totp:ana")


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
    barrier = threading.Barrier(8)
    sealed: list[str] = []

    def create() -> None:
        sealer = SecretSealer(key)
        barrier.wait()
        sealed.append(sealer.seal(SECRET, "totp:ana"))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({value.split(":")[1] for value in sealed}) == 1
    assert all(SecretSealer(key).open(value, "totp:ana") == SECRET for value in sealed)
