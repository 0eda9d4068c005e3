"""Syslog message parsing (RFC 5424, RFC 3164 and common vendor variants)."""

from parsers.syslog.parser import parse_syslog

__all__ = ["parse_syslog"]
