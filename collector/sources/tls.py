"""TLS for listeners (RFC 5425 syslog, HTTPS ingest, the control listener's API): the server
context, file checks, and a self-signed pair generated under the data directory for trials.
The config model, `TlsConfig`, is in collector/config/models.py (the control settings use it).

A self-signed pair lets the example configuration serve TLS without a private key committed to
the repository; production configurations name their own `cert_file` and `key_file`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.config.models import TlsConfig
from core.config import ConfigIssue, ValidationContext

log = logging.getLogger(__name__)

__all__ = ["TlsConfig", "server_context", "self_signed_pair", "tls_file_issues"]

_SELF_SIGNED_DAYS = 365
_RENEW_BEFORE = timedelta(days=7)


def tls_file_issues(config: TlsConfig | None, context: ValidationContext) -> list[ConfigIssue]:
    """`vigil validate`'s check of the files a `tls:` block names: present, and loadable as a
    certificate chain with its key, or as a CA bundle."""
    if config is None:
        return []
    issues: list[ConfigIssue] = []
    for key in ("cert_file", "key_file", "ca_file"):
        path = getattr(config, key)
        if path is not None and not context.resolve(path).is_file():
            issues.append((("tls", key), f"no such file: {context.resolve(path)}"))
    if issues:
        return issues
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if config.cert_file is not None and config.key_file is not None:
        try:
            probe.load_cert_chain(context.resolve(config.cert_file),
                                  context.resolve(config.key_file))
        except (OSError, ssl.SSLError) as exc:
            issues.append((("tls", "cert_file"), f"cannot load the certificate with key_file: "
                                                 f"{_ssl_reason(exc)}"))
    if config.ca_file is not None:
        try:
            probe.load_verify_locations(cafile=context.resolve(config.ca_file))
        except (OSError, ssl.SSLError) as exc:
            issues.append((("tls", "ca_file"), f"cannot load the CA bundle: {_ssl_reason(exc)}"))
    return issues


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc)


def server_context(config: TlsConfig, source_id: str, *, conf_dir: Path | None,
                   data_dir: Path | None, host: str) -> ssl.SSLContext:
    """The SSL context of a listening source; raises OSError/ssl.SSLError naming the file."""
    def resolve(path: Path) -> Path:
        return path if path.is_absolute() or conf_dir is None else conf_dir / path

    if config.self_signed:
        if data_dir is None:
            raise ValueError("self_signed TLS needs a data directory")
        cert, key = self_signed_pair(data_dir / "tls", source_id, host)
    else:
        assert config.cert_file is not None and config.key_file is not None
        cert, key = resolve(config.cert_file), resolve(config.key_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (ssl.TLSVersion.TLSv1_3 if config.min_version == "TLSv1.3"
                               else ssl.TLSVersion.TLSv1_2)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from exc
    if config.client_auth != "none":
        assert config.ca_file is not None
        ca = resolve(config.ca_file)
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise OSError(f"cannot load TLS CA file {ca}: {exc}") from exc
        context.verify_mode = (ssl.CERT_REQUIRED if config.client_auth == "required"
                               else ssl.CERT_OPTIONAL)
    return context


def self_signed_pair(directory: Path, name: str, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate and key for `name` under `directory`, generated once and renewed shortly
    before they expire. The key file is created 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if current.not_valid_after_utc - datetime.now(UTC) > _RENEW_BEFORE:
            return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"vigil {name} (self-signed)")])
    names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    try:
        bound = ipaddress.ip_address(host)
        if not bound.is_unspecified and bound not in (ipaddress.ip_address("127.0.0.1"),
                                                      ipaddress.ip_address("::1")):
            names.append(x509.IPAddress(bound))
    except ValueError:
        if host:
            names.append(x509.DNSName(host))
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=_SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":")
    log.warning("generated a self-signed TLS certificate (for trials; configure cert_file and "
                "key_file in production)",
                extra={"source": name, "cert_file": str(cert_path), "sha256": fingerprint})
    return cert_path, key_path


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
