"""A seeded, reproducible mixed security-log workload: syslog lines and the same events as JSON.

The mix is what a collector in front of a small company sees: sshd logins (brute force from
public addresses and real users), FortiGate traffic logs, nginx access lines sent via syslog,
and cron / sudo / systemd housekeeping. Same seed, same arguments -> byte-identical output.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import string
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal

import orjson

# Share of each kind of event in the stream; the generator draws kinds with these weights.
MIX: MappingProxyType[str, float] = MappingProxyType({
    "sshd": 0.30,
    "fortigate": 0.30,
    "nginx": 0.25,
    "cron": 0.05,
    "sudo": 0.05,
    "systemd": 0.05,
})
# Linux hosts forwarding with an RFC 5424 template (rsyslog's RSYSLOG_SyslogProtocol23Format);
# the rest use the classic RFC 3164 header. FortiGates always use FortiOS's default format
# (`<PRI>date=... time=... key=value`), since the RFC 5424 header would not fit the size bound.
RFC5424_SHARE = 0.12
# Size bounds of a rendered syslog line, per kind. A FortiOS traffic line with just the fields
# that matter (date .. rcvdbyte below) is 330-370 bytes quoted as FortiOS 6/7 does (real ones,
# with every field, run 500-900), so FortiGate lines get their own bound rather than losing
# fields; every other kind stays within 120-320.
LINE_BYTES = (120, 320)
FORTIGATE_LINE_BYTES = (300, 400)
DEFAULT_SEED = 1
# Fixed so that output does not depend on when it is generated. RFC 3164 headers carry no year;
# receivers infer it.
DEFAULT_START = datetime(2024, 5, 14, 9, 12, 0, tzinfo=UTC)
DEFAULT_RATE = 2000.0  # events per second of simulated time: 200,000 events span 100 s

Header = Literal["rfc3164", "rfc5424", "fortios"]

# Facilities and severities (RFC 5424 numbering).
_AUTH, _CRON, _DAEMON, _AUTHPRIV, _LOCAL7 = 4, 9, 3, 10, 23
_ALERT, _ERR, _WARNING, _NOTICE, _INFO = 1, 3, 4, 5, 6

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_REAL_USERS = (
    "root", "deploy", "ansible", "jenkins", "git", "backup", "postgres", "ubuntu", "ec2-user",
    "mschmidt", "jdoe", "alopez", "kwatanabe", "pnovak", "svc-monitoring", "svc-backup",
    "oleksandr.k", "priya.r", "tbrown", "lmartin", "ahmed.y", "sofia.ricci",
)
_SUDO_USERS = ("deploy", "ansible", "jdoe", "alopez", "mschmidt", "pnovak", "tbrown", "priya.r")
# What brute-forcers try (the top of real honeypot lists).
_INVALID_USERS = (
    "admin", "test", "user", "oracle", "pi", "guest", "support", "ftpuser", "test1",
    "administrator", "ubnt", "hadoop", "minecraft", "mysql", "nagios", "zabbix", "solana", "sol",
    "validator", "debian", "centos", "vagrant", "tomcat", "elastic", "kafka", "dev", "user1",
    "operator", "webmaster", "steam", "teamspeak", "odoo", "ts3", "sysadmin", "service", "demo",
    "www", "ftp", "apache", "es", "postgres1", "123456", "Admin", "ubuntu1", "deployer",
)
_ROLES = ("web", "api", "app", "db", "bastion", "ci", "mail", "cache", "k8s-node", "backup",
          "vpn", "ldap")
_WEB_ROLES = frozenset({"web", "api"})
_ENVS = ("prod", "prod", "prod", "stg", "dev")
_DATACENTERS = ("fra1", "ams3", "nyc2", "sfo3", "lon1")
_DOMAINS = ("acme-corp.net", "internal.globex.io", "corp.initech.com")
_FORTIGATES = (
    ("FGT-HQ-01", "FG200FT921900123"),
    ("FGT-HQ-02", "FG200FT921900456"),
    ("FGT60F-LYON", "FGT60FTK21093344"),
    ("FG100F-DC1", "FG100FTK20012875"),
)
# (service, protocol, destination port)
_SERVICES = (
    ("HTTPS", 6, 443), ("HTTPS", 6, 443), ("HTTPS", 6, 443), ("HTTP", 6, 80), ("DNS", 17, 53),
    ("DNS", 17, 53), ("NTP", 17, 123), ("SSH", 6, 22), ("SMTPS", 6, 465), ("RDP", 6, 3389),
    ("IMAPS", 6, 993), ("tcp/8443", 6, 8443), ("udp/443", 17, 443), ("PING", 1, 0),
)
_FG_ACTIONS = (("close", 60), ("accept", 15), ("deny", 12), ("timeout", 8), ("server-rst", 3),
               ("client-rst", 2))
_SITES = ("shop.acme-corp.net", "www.acme-corp.net", "portal.globex.io", "api.initech.com")
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 zgrab/0.x",
    "okhttp/4.12.0",
)
_SCANNER_PATHS = ("/wp-login.php", "/.env", "/.git/config", "/phpmyadmin/index.php",
                  "/cgi-bin/luci/;stok=/locale", "/boaform/admin/formLogin", "/actuator/health")
_CRON_COMMANDS = (
    ("root", "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }"),
    ("root", "   cd / && run-parts --report /etc/cron.hourly"),
    ("root", "[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then "
             "/usr/lib/php/sessionclean; fi"),
    ("backup", "/usr/local/bin/pg_backup.sh --full --target s3://acme-backups/db "
               ">> /var/log/pg_backup.log 2>&1"),
    ("www-data", "php /var/www/portal/artisan schedule:run >> /dev/null 2>&1"),
    ("root", "/usr/bin/certbot renew --quiet --deploy-hook 'systemctl reload nginx'"),
)
_SUDO_COMMANDS = (
    "/usr/bin/systemctl restart nginx", "/usr/bin/journalctl -u sshd --since today",
    "/usr/bin/apt-get upgrade -y", "/usr/bin/docker ps -a", "/bin/bash",
    "/usr/bin/tail -n 200 /var/log/auth.log", "/usr/sbin/iptables -L -n -v",
    "/usr/bin/systemctl status postgresql@15-main", "/usr/bin/kubectl get pods -A",
)
_SYSTEMD_TEMPLATES = (
    (_INFO, "Started session-{n}.scope - Session {n} of User {user}."),
    (_INFO, "session-{n}.scope: Deactivated successfully."),
    (_INFO, "Starting apt-daily-upgrade.service - Daily apt upgrade and clean activities..."),
    (_INFO, "Finished logrotate.service - Rotate log files."),
    (_INFO, "certbot.service: Consumed {cpu}s CPU time, {mem}M memory peak, 0B memory swap peak."),
    (_INFO, "Started phpsessionclean.service - Clean php session files."),
    (_INFO, "Reloading nginx.service - A high performance web server and a reverse proxy "
            "server..."),
    (_ERR, "nginx.service: Main process exited, code=exited, status=1/FAILURE"),
    (_WARNING, "user@{uid}.service: Failed with result 'timeout' after {cpu}s."),
)


@dataclass(frozen=True, slots=True)
class WorkloadEvent:
    """One generated event, before it is rendered as a syslog line or a JSON object."""

    kind: str
    timestamp: datetime
    hostname: str
    appname: str | None
    pid: int | None
    facility: int
    severity: int
    message: str
    header: Header

    @property
    def priority(self) -> int:
        return self.facility * 8 + self.severity


def render_syslog(event: WorkloadEvent) -> bytes:
    """The syslog line of `event`, without a line terminator."""
    ts = event.timestamp
    pri = event.priority
    if event.header == "fortios":
        return f"<{pri}>{event.message}".encode()
    tag = event.appname or "-"
    if event.header == "rfc5424":
        procid = str(event.pid) if event.pid is not None else "-"
        stamp = ts.isoformat(timespec="microseconds")
        return f"<{pri}>1 {stamp} {event.hostname} {tag} {procid} - - {event.message}".encode()
    stamp = f"{_MONTHS[ts.month - 1]} {ts.day:2d} {ts:%H:%M:%S}"
    pid = f"[{event.pid}]" if event.pid is not None else ""
    return f"<{pri}>{stamp} {event.hostname} {tag}{pid}: {event.message}".encode()


def render_json(event: WorkloadEvent) -> bytes:
    """The same event as one JSON object with Vigil's flat ECS-style keys, no terminator."""
    record: dict[str, object] = {
        "@timestamp": event.timestamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "host.hostname": event.hostname,
    }
    if event.appname is not None:
        record["log.syslog.appname"] = event.appname
    if event.pid is not None:
        record["process.pid"] = event.pid
    record["log.syslog.facility.code"] = event.facility
    record["log.syslog.severity.code"] = event.severity
    record["message"] = event.message
    return orjson.dumps(record)


class _Generator:
    """Holds the random state and the per-seed fleet (hosts, attacker and client addresses)."""

    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        hosts = []
        for i in range(48):
            role = _ROLES[i % len(_ROLES)]
            short = f"{role}-{rng.choice(_ENVS)}-{rng.randint(1, 24):02d}"
            if rng.random() < 0.3:
                short = f"{short}.{rng.choice(_DATACENTERS)}.{rng.choice(_DOMAINS)}"
            hosts.append((role, short))
        self.hosts = [h for _, h in hosts]
        self.web_hosts = [h for role, h in hosts if role in _WEB_ROLES]
        self.ssh_hosts = self.hosts + [h for role, h in hosts if role == "bastion"] * 6
        # A few hundred addresses do most of the brute forcing; real users come from fewer.
        self.attackers = [self.public_ip() for _ in range(300)]
        self.clients = [self.public_ip() for _ in range(60)]
        self.web_clients = [self.public_ip() for _ in range(2000)]
        self.sessions = {dev: rng.randint(10_000_000, 900_000_000) for dev, _ in _FORTIGATES}
        self.kinds = list(MIX)
        self.weights = [MIX[k] for k in self.kinds]
        self.makers: dict[str, Callable[[datetime], WorkloadEvent]] = {
            "sshd": self.sshd, "fortigate": self.fortigate, "nginx": self.nginx,
            "cron": self.cron, "sudo": self.sudo, "systemd": self.systemd,
        }

    def public_ip(self) -> str:
        rng = self.rng
        while True:
            address = ipaddress.IPv4Address(rng.getrandbits(32))
            if address.is_global and not address.is_multicast:
                return str(address)

    def internal_ip(self) -> str:
        rng = self.rng
        return f"10.{rng.choice((10, 20, 30, 40))}.{rng.randint(0, 15)}.{rng.randint(2, 254)}"

    def header(self) -> Header:
        return "rfc5424" if self.rng.random() < RFC5424_SHARE else "rfc3164"

    def pid(self) -> int:
        return self.rng.randint(800, 3_999_999)

    def port(self) -> int:
        return self.rng.randint(1024, 65535)

    def sshd(self, ts: datetime) -> WorkloadEvent:
        rng = self.rng
        roll = rng.random()
        attacker, client = rng.choice(self.attackers), rng.choice(self.clients)
        real, invalid = rng.choice(_REAL_USERS), rng.choice(_INVALID_USERS)
        severity = _INFO
        if roll < 0.34:
            message = f"Failed password for invalid user {invalid} from {attacker} " \
                      f"port {self.port()} ssh2"
        elif roll < 0.56:
            message = f"Failed password for {real} from {attacker} port {self.port()} ssh2"
        elif roll < 0.64:
            message = f"Accepted password for {real} from {client} port {self.port()} ssh2"
        elif roll < 0.78:
            fingerprint = "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=43))
            key = rng.choice(("ED25519", "RSA", "ECDSA"))
            message = f"Accepted publickey for {real} from {client} port {self.port()} ssh2: " \
                      f"{key} SHA256:{fingerprint}"
        elif roll < 0.90:
            message = f"Invalid user {invalid} from {attacker} port {self.port()}"
        elif roll < 0.96:
            message = f"Connection closed by authenticating user {real} {attacker} " \
                      f"port {self.port()} [preauth]"
        else:
            severity = _ERR
            message = f"error: maximum authentication attempts exceeded for {real} from " \
                      f"{attacker} port {self.port()} ssh2 [preauth]"
        return WorkloadEvent("sshd", ts, rng.choice(self.ssh_hosts), "sshd", self.pid(),
                             _AUTH, severity, message, self.header())

    def fortigate(self, ts: datetime) -> WorkloadEvent:
        rng = self.rng
        devname, devid = rng.choice(_FORTIGATES)
        service, proto, dstport = rng.choice(_SERVICES)
        action = rng.choices([a for a, _ in _FG_ACTIONS], [w for _, w in _FG_ACTIONS])[0]
        self.sessions[devname] += rng.randint(1, 40)
        if rng.random() < 0.8:  # outbound from the LAN
            srcip, srcintf, dstip, dstintf = self.internal_ip(), "lan", self.public_ip(), "wan1"
        else:  # inbound to the DMZ
            srcip, srcintf, dstip, dstintf = self.public_ip(), "wan1", self.internal_ip(), "dmz"
        denied = action == "deny"
        # Session sizes are heavy-tailed: most are a few KiB, a few are downloads.
        sent = 0 if denied else int(rng.lognormvariate(7, 1.6)) + 40
        received = 0 if denied else int(rng.lognormvariate(8, 2.2))
        message = (
            f"date={ts:%Y-%m-%d} time={ts:%H:%M:%S} devname=\"{devname}\" devid=\"{devid}\" "
            f"logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" "
            f"level=\"{'warning' if denied else 'notice'}\" vd=\"root\" srcip={srcip} "
            f"srcport={self.port()} srcintf=\"{srcintf}\" dstip={dstip} dstport={dstport} "
            f"dstintf=\"{dstintf}\" sessionid={self.sessions[devname]} proto={proto} "
            f"action=\"{action}\" policyid={rng.randint(1, 48)} service=\"{service}\" "
            f"sentbyte={sent} rcvdbyte={received}"
        )
        return WorkloadEvent("fortigate", ts, devname, None, None, _LOCAL7,
                             _WARNING if denied else _NOTICE, message, "fortios")

    def nginx(self, ts: datetime) -> WorkloadEvent:
        rng = self.rng
        site = rng.choice(_SITES)
        roll = rng.random()
        if roll < 0.06:
            path, status = rng.choice(_SCANNER_PATHS), rng.choice((404, 404, 403, 301))
        elif roll < 0.30:
            path, status = f"/api/v1/orders?page={rng.randint(1, 40)}", 200
        elif roll < 0.45:
            path, status = f"/api/v1/users/{rng.randint(1000, 99999)}", rng.choice((200, 200, 401))
        elif roll < 0.70:
            path = f"/static/js/app.{rng.getrandbits(32):08x}.js"
            status = rng.choice((200, 304))
        elif roll < 0.85:
            path, status = f"/images/products/{rng.randint(1, 5000)}.jpg", rng.choice((200, 404))
        else:
            path, status = rng.choice(("/", "/login", "/cart", "/checkout")), 200
        if rng.random() < 0.02:
            status = rng.choice((500, 502, 504))
        method = "POST" if path in ("/login", "/checkout") or rng.random() < 0.08 else "GET"
        size = 0 if status == 304 else rng.randint(120, 48_000)
        referer = f"https://{site}/" if rng.random() < 0.5 else "-"
        message = (
            f"{rng.choice(self.web_clients)} - - [{ts:%d}/{_MONTHS[ts.month - 1]}/{ts:%Y:%H:%M:%S}"
            f" +0000] \"{method} {path} HTTP/1.1\" {status} {size} \"{referer}\" "
            f"\"{rng.choice(_USER_AGENTS)}\""
        )
        severity = _ERR if status >= 500 else _INFO
        return WorkloadEvent("nginx", ts, rng.choice(self.web_hosts), "nginx", None, _LOCAL7,
                             severity, message, self.header())

    def cron(self, ts: datetime) -> WorkloadEvent:
        rng = self.rng
        user, command = rng.choice(_CRON_COMMANDS)
        roll = rng.random()
        if roll < 0.6:
            facility, message = _CRON, f"({user}) CMD ({command})"
        elif roll < 0.8:
            facility = _AUTHPRIV
            message = f"pam_unix(cron:session): session opened for user {user}" \
                      f"(uid={0 if user == 'root' else rng.randint(33, 1200)}) by root(uid=0)"
        else:
            facility = _AUTHPRIV
            message = f"pam_unix(cron:session): session closed for user {user} " \
                      f"after {rng.randint(1, 900)} seconds of activity"
        return WorkloadEvent("cron", ts, rng.choice(self.hosts), "CRON", self.pid(), facility,
                             _INFO, message, self.header())

    def sudo(self, ts: datetime) -> WorkloadEvent:
        rng = self.rng
        user = rng.choice(_SUDO_USERS)
        command = rng.choice(_SUDO_COMMANDS)
        where = f"TTY=pts/{rng.randint(0, 6)} ; PWD=/home/{user} ; USER=root"
        roll = rng.random()
        severity = _NOTICE
        if roll < 0.7:
            message = f"{user} : {where} ; COMMAND={command}"
        elif roll < 0.9:
            message = f"pam_unix(sudo:session): session opened for user root(uid=0) by " \
                      f"{user}(uid={rng.randint(1000, 1100)})"
        else:
            severity = _ALERT
            message = f"{user} : {rng.randint(1, 3)} incorrect password attempts ; {where} ; " \
                      f"COMMAND={command}"
        return WorkloadEvent("sudo", ts, rng.choice(self.hosts), "sudo", self.pid(), _AUTHPRIV,
                             severity, message, self.header())

    def systemd(self, ts: datetime) -> WorkloadEvent:
        rng = self.rng
        severity, template = rng.choice(_SYSTEMD_TEMPLATES)
        message = template.format(n=rng.randint(1, 90_000), user=rng.choice(_REAL_USERS),
                                  uid=rng.randint(1000, 1100),
                                  cpu=f"{rng.uniform(0.05, 40):.3f}",
                                  mem=f"{rng.uniform(4, 300):.1f}")
        return WorkloadEvent("systemd", ts, rng.choice(self.hosts), "systemd", 1, _DAEMON,
                             severity, message, self.header())

    def event(self, ts: datetime) -> WorkloadEvent:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        make = self.makers[kind]
        low, high = line_bounds(kind)
        # Draw again until the line fits the size bounds; the kind stays, so the mix holds.
        for _ in range(100):
            event = make(ts)
            if low <= len(render_syslog(event)) <= high:
                return event
        raise RuntimeError(f"workload: no {kind} line within {low}-{high} bytes after 100 draws")


def line_bounds(kind: str) -> tuple[int, int]:
    """The (min, max) size in bytes of a syslog line of `kind`."""
    return FORTIGATE_LINE_BYTES if kind == "fortigate" else LINE_BYTES


def events(n: int, seed: int = DEFAULT_SEED, *, start: datetime = DEFAULT_START,
           rate: float = DEFAULT_RATE) -> list[WorkloadEvent]:
    """`n` events, `rate` per second of simulated time from `start`, drawn with `MIX`."""
    generator = _Generator(seed)
    step = timedelta(seconds=1 / rate)
    return [generator.event(start + i * step) for i in range(n)]


def syslog_lines(n: int, seed: int = DEFAULT_SEED, *, start: datetime = DEFAULT_START,
                 rate: float = DEFAULT_RATE) -> list[bytes]:
    """`n` syslog lines (no terminators) of `events(n, seed, ...)`."""
    return [render_syslog(e) for e in events(n, seed, start=start, rate=rate)]


def json_lines(n: int, seed: int = DEFAULT_SEED, *, start: datetime = DEFAULT_START,
               rate: float = DEFAULT_RATE) -> list[bytes]:
    """The same events as `syslog_lines(n, seed, ...)` as JSON objects (no terminators)."""
    return [render_json(e) for e in events(n, seed, start=start, rate=rate)]


def newline_framed(lines: Iterable[bytes]) -> bytes:
    """One stream of newline-terminated lines (TCP syslog, raw TCP, NDJSON bodies)."""
    return b"".join(line + b"\n" for line in lines)


def octet_counted(lines: Iterable[bytes]) -> bytes:
    """One stream framed by RFC 6587 octet counting (`LEN SP MSG`)."""
    return b"".join(b"%d %s" % (len(line), line) for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.workload",
        description="Write a seeded mixed security-log workload to stdout.")
    parser.add_argument("--events", type=int, default=10_000, help="number of events")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--format", choices=("syslog", "json"), default="syslog")
    parser.add_argument("--framing", choices=("newline", "octet"), default="newline",
                        help="octet counting (RFC 6587) applies to the syslog format only")
    args = parser.parse_args(argv)
    if args.events < 0:
        parser.error("--events must be >= 0")
    if args.framing == "octet" and args.format == "json":
        parser.error("--framing octet applies to --format syslog only")
    if args.format == "json":
        lines = json_lines(args.events, args.seed)
    else:
        lines = syslog_lines(args.events, args.seed)
    framed = octet_counted if args.framing == "octet" else newline_framed
    sys.stdout.buffer.write(framed(lines))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
