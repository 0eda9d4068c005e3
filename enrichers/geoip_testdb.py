"""Small City- and ASN-shaped MaxMind databases for tests and the example conf.d.

Records have the layout of GeoLite2-City / GeoLite2-ASN (which geoip2 and the `geoip` step read),
on a handful of public networks in the style of MaxMind's own test databases, with invented data
and documentation AS numbers (RFC 5398). Users point the step at their GeoLite2/GeoIP2 files.
`python -m enrichers.geoip_testdb DIR` writes DIR/Vigil-Test-City.mmdb and DIR/Vigil-Test-ASN.mmdb.
Needs mmdb-writer (the `dev` extra).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

CITY_FILE = "Vigil-Test-City.mmdb"
ASN_FILE = "Vigil-Test-ASN.mmdb"


def city_record(iso_code: str, country: str, *, city: str | None = None,
                region: str | None = None, region_code: str | None = None,
                lat: float | None = None, lon: float | None = None) -> dict[str, Any]:
    """One record in GeoIP2 City layout (names in English only)."""
    record: dict[str, Any] = {"country": {"iso_code": iso_code, "names": {"en": country}}}
    if city is not None:
        record["city"] = {"names": {"en": city}}
    if region is not None:
        record["subdivisions"] = [{"iso_code": region_code or "", "names": {"en": region}}]
    if lat is not None and lon is not None:
        record["location"] = {"latitude": float(lat), "longitude": float(lon),
                              "accuracy_radius": 100}
    return record


def asn_record(number: int, organization: str) -> dict[str, Any]:
    """One record in GeoLite2-ASN layout."""
    return {"autonomous_system_number": number, "autonomous_system_organization": organization}


CITY_RECORDS: list[tuple[str, dict[str, Any]]] = [
    ("81.2.69.0/24", city_record("GB", "United Kingdom", city="London", region="England",
                                 region_code="ENG", lat=51.5142, lon=-0.0931)),
    ("89.160.20.0/24", city_record("SE", "Sweden", city="Linköping",
                                   region="Östergötland County", region_code="E",
                                   lat=58.4167, lon=15.6167)),
    ("216.160.83.0/24", city_record("US", "United States", city="Milton", region="Washington",
                                    region_code="WA", lat=47.2513, lon=-122.3149)),
    ("175.16.199.0/24", city_record("CN", "China", city="Changchun", region="Jilin Sheng",
                                    region_code="22", lat=43.88, lon=125.3228)),
    ("2001:480::/32", city_record("US", "United States", city="San Diego", region="California",
                                  region_code="CA", lat=32.7203, lon=-117.1552)),
    # Country only: no city, region or location in the record.
    ("2a02:cf40::/29", city_record("NO", "Norway")),
    # A documentation network: present in the database, but the step must skip it unread.
    ("198.51.100.0/24", city_record("ZZ", "Documentation")),
]

ASN_RECORDS: list[tuple[str, dict[str, Any]]] = [
    ("81.2.69.0/24", asn_record(64496, "Example Transit Ltd")),
    ("89.160.20.0/24", asn_record(64497, "Example Nordic AB")),
    ("216.160.83.0/24", asn_record(64498, "Example Cable Inc")),
    ("2001:480::/32", asn_record(64499, "Example IPv6 Networks")),
    # ASN only: no City record for this network.
    ("1.128.0.0/11", asn_record(64500, "Example Mobile Pty")),
]


def write_database(path: Path | str, records: list[tuple[str, dict[str, Any]]],
                   database_type: str) -> Path:
    """Write `records` (network, record) to an IPv6 database (IPv4 under ::/96, like MaxMind's)
    and rename it into place, so a running step sees one complete new file."""
    from mmdb_writer import MMDBWriter  # dev dependency: only this builder needs it
    from netaddr import IPSet

    path = Path(path)
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type,
                        languages=["en"], description="Vigil test data, not MaxMind data")
    for network, record in records:
        writer.insert_network(IPSet([network]), record)
    tmp = path.with_name(path.name + ".tmp")
    writer.to_db_file(str(tmp))
    os.replace(tmp, path)
    return path


def write_city_database(path: Path | str,
                        records: list[tuple[str, dict[str, Any]]] | None = None) -> Path:
    """A City database (database_type GeoLite2-City, so geoip2's `city()` accepts it too)."""
    return write_database(path, CITY_RECORDS if records is None else records, "GeoLite2-City")


def write_asn_database(path: Path | str,
                       records: list[tuple[str, dict[str, Any]]] | None = None) -> Path:
    """An ASN database (database_type GeoLite2-ASN, so geoip2's `asn()` accepts it too)."""
    return write_database(path, ASN_RECORDS if records is None else records, "GeoLite2-ASN")


def write_example_databases(directory: Path | str) -> tuple[Path, Path]:
    """Both example databases under `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return (write_city_database(directory / CITY_FILE),
            write_asn_database(directory / ASN_FILE))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m enrichers.geoip_testdb DIR", file=sys.stderr)
        return 2
    for path in write_example_databases(args[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
