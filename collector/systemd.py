"""systemd service notifications (READY, RELOADING, STOPPING, WATCHDOG).

Written here rather than pulling in a library: the protocol is one datagram to $NOTIFY_SOCKET,
and the python-systemd bindings need libsystemd headers to build.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time


class SystemdNotifier:
    """Sends sd_notify messages when started by systemd; does nothing otherwise."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval = int(usec) / 1e6 / 2 if enabled else None
        self._last_watchdog = 0.0

    def notify(self, state: str) -> None:
        if not self.address:
            return
        # OSError: systemd went away; nothing useful to do.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, \
                contextlib.suppress(OSError):
            sock.sendto(state.encode(), self.address)

    def ready(self) -> None:
        self.notify("READY=1\nSTATUS=Running")

    def reloading(self) -> None:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self, now: float) -> None:
        """Ping the watchdog from the tick, at half the configured interval."""
        interval = self.watchdog_interval
        if interval is not None and now - self._last_watchdog >= interval:
            self._last_watchdog = now
            self.notify("WATCHDOG=1")
