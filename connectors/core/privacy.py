"""What may be sent to VirusTotal: anything queried can join its data set.

`skip_reason` answers None (send it) or a sentence saying why not. The special-purpose ranges
are listed here explicitly, before the `is_global` fallback, so the reasons name the range and
the answer does not drift with the ipaddress tables of each Python version (3.9 thinks
multicast and 6to4 are global, 3.13 does not).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, List, Optional, Tuple, Union

from .config import PrivacySettings
from .observable import URL_SCHEMES, Kind, Observable, split_url

__all__ = ["skip_reason"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_NEVER = "is never sent to VirusTotal"

# (network, what it is, where it is defined, documentation range?) — first match wins.
_RANGES: List[Tuple[_Network, str, str, bool]] = [
    (ipaddress.ip_network(net), what, ref, doc)
    for net, what, ref, doc in (
        ("0.0.0.0/8", "'this network' address", "RFC 1122", False),
        ("10.0.0.0/8", "private address", "RFC 1918", False),
        ("100.64.0.0/10", "shared (carrier-grade NAT) address", "RFC 6598", False),
        ("127.0.0.0/8", "loopback address", "RFC 1122", False),
        ("169.254.0.0/16", "link-local address", "RFC 3927", False),
        ("172.16.0.0/12", "private address", "RFC 1918", False),
        ("192.0.0.0/24", "IETF protocol assignment address", "RFC 6890", False),
        ("192.0.2.0/24", "documentation address", "RFC 5737", True),
        ("192.168.0.0/16", "private address", "RFC 1918", False),
        ("198.18.0.0/15", "benchmarking address", "RFC 2544", False),
        ("198.51.100.0/24", "documentation address", "RFC 5737", True),
        ("203.0.113.0/24", "documentation address", "RFC 5737", True),
        ("224.0.0.0/4", "multicast address", "RFC 5771", False),
        ("255.255.255.255/32", "broadcast address", "RFC 919", False),
        ("240.0.0.0/4", "reserved address", "RFC 1112", False),
        ("::/128", "unspecified address", "RFC 4291", False),
        ("::1/128", "loopback address", "RFC 4291", False),
        ("64:ff9b:1::/48", "local-use NAT64 address", "RFC 8215", False),
        ("100::/64", "discard-only address", "RFC 6666", False),
        ("2001:db8::/32", "documentation address", "RFC 3849", True),
        ("2001::/32", "Teredo address", "RFC 4380", False),
        ("fc00::/7", "unique local address", "RFC 4193", False),
        ("fe80::/10", "link-local address", "RFC 4291", False),
        ("fec0::/10", "site-local address", "RFC 3879", False),
        ("ff00::/8", "multicast address", "RFC 4291", False),
    )
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# WHATWG URL parsing turns a host ending in a number into an IPv4 address: http://2130706433/,
# http://0x7f.1/ and http://127.1/ all reach 127.0.0.1.
_NUMERIC_LABEL = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)")


def skip_reason(obs: Observable, settings: PrivacySettings) -> Optional[str]:
    """None when `obs` may be sent to VirusTotal, else why not, in words."""
    kind = obs.kind
    if kind.is_hash:
        return None
    if kind is Kind.IPV4 or kind is Kind.IPV6:
        try:
            ip = ipaddress.ip_address(obs.value)
        except ValueError:
            return f"{obs.value!r} is not a valid IP address"
        return _ip_reason(ip, settings)
    if kind is Kind.DOMAIN:
        return _domain_reason(obs.value, settings)
    if kind is Kind.URL:
        return _url_reason(obs.value, settings)
    return f"unknown kind {kind!r}"  # pragma: no cover - Kind is closed


def _unwrap(ip: Any) -> Tuple[Any, str]:
    """The IPv4 address an IPv6 address stands for, if any, and how it was wrapped."""
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped, f" (IPv4-mapped in {ip})"
        if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d; :: and ::1 are IPv6's own
            return ipaddress.IPv4Address(int(ip)), f" (IPv4-compatible in {ip})"
        if ip.sixtofour is not None:
            return ip.sixtofour, f" (inside 6to4 address {ip})"
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), f" (inside NAT64 address {ip})"
    return ip, ""


def _ip_reason(ip: Any, settings: PrivacySettings) -> Optional[str]:
    ip, wrapped = _unwrap(ip)
    for net, what, ref, doc in _RANGES:
        if ip.version == net.version and ip in net:
            if doc and settings.allow_documentation_ranges:
                return None
            if doc:
                return (
                    f"{what} {ip} ({ref}){wrapped} is only sent to VirusTotal when "
                    "privacy.allow_documentation_ranges is set"
                )
            return f"{what} {ip} ({ref}){wrapped} {_NEVER}"
    # Ranges the table does not name (and future IANA additions) still need is_global.
    if not ip.is_global or ip.is_multicast:
        return f"non-global address {ip}{wrapped} {_NEVER}"
    return None


def _suffixes(settings: PrivacySettings) -> Tuple[str, ...]:
    return tuple("." + s.strip().lower().lstrip(".") for s in settings.internal_suffixes if s)


def _domain_reason(name: str, settings: PrivacySettings) -> Optional[str]:
    name = name.lower().rstrip(".")
    if not name:
        return f"empty host name {_NEVER}"
    for suffix in _suffixes(settings):
        if name.endswith(suffix) or name == suffix[1:]:
            return f"internal domain suffix {suffix} ({name}) {_NEVER}"
    if "." not in name:
        return f"single-label name {name!r} {_NEVER}"
    return None


def _url_reason(url: str, settings: PrivacySettings) -> Optional[str]:
    parts = split_url(url)
    if parts is None:
        return "not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        return f"URL scheme {scheme!r} {_NEVER} (only {', '.join(URL_SCHEMES)})"
    host = parts.host.lower()
    # Userinfo ("http://bank.com@10.0.0.1/") never decides: the host after "@" does.
    ip = _host_ip(host)
    if ip is not None:
        reason = _ip_reason(ip, settings)
    elif parts.bracketed or _NUMERIC_LABEL.fullmatch(host.rstrip(".").rpartition(".")[2]):
        reason = f"{host!r} ends in a number but is no valid IPv4 address; {_NEVER}"
    else:
        reason = _domain_reason(host, settings)
    return None if reason is None else f"URL host: {reason}"


def _host_ip(host: str) -> Optional[IPAddress]:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    return _whatwg_ipv4(host.rstrip("."))


def _whatwg_ipv4(host: str) -> Optional[ipaddress.IPv4Address]:
    """Browsers' reading of a host whose last label is a number (0x hex, 0 octal, decimal)."""
    labels = host.split(".")
    if not _NUMERIC_LABEL.fullmatch(labels[-1]) or len(labels) > 4:
        return None
    numbers = []
    for label in labels:
        if not _NUMERIC_LABEL.fullmatch(label):
            return None
        if label[:2] in ("0x", "0X"):
            number = int(label[2:] or "0", 16)
        elif len(label) > 1 and label.startswith("0"):
            if not label.isdigit() or "8" in label or "9" in label:
                return None
            number = int(label, 8)
        else:
            number = int(label)
        numbers.append(number)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)
