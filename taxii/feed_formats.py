"""What each firewall accepts in a flat list, and the lines of each format.

PAN-OS EDL (Palo Alto's formatting guidelines): one type per list; URLs without scheme or port;
entries of at most 255 characters; IP addresses, ranges and CIDRs (collapsed here). Check Point
custom intelligence feed: CSV `UNIQ-NAME,VALUE,TYPE,CONFIDENCE,SEVERITY,PRODUCT,COMMENT` with
the types IP (IPv4), IP Range, Domain, URL, MD5, SHA1, SHA256. Cisco TID flat files: one type
per file, SHA-256 only for files, no CIDR, URLs without scheme. Every format: never a public
suffix (or a wildcard over one), never a network shorter than the configured minimum.
"""

from __future__ import annotations

import csv
import functools
import io
import ipaddress
import re
from typing import Any, Dict, List, Tuple, Union

from .feed_options import FeedOptions

Entry = Tuple[str, str, Dict[str, Any]]  # kind (file, url, domain, ip), value, indicator
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
MAX_EDL_ENTRY = 255
CSV_HEADER = ["value", "kind", "confidence", "valid_until", "labels", "name"]
CHECKPOINT_HEADER = "# UNIQ-NAME,VALUE,TYPE,CONFIDENCE,SEVERITY,PRODUCT,COMMENT"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HASH_TYPE = {32: "MD5", 40: "SHA1", 64: "SHA256"}


@functools.lru_cache(maxsize=1)
def _suffixes() -> Any:
    import tldextract  # late: ~0.2 s to import

    # Offline (bundled snapshot); private suffixes too: *.github.io would block everyone's pages.
    return tldextract.TLDExtract(
        suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
    )


def is_public_suffix(name: str) -> bool:
    """A TLD or public suffix (com, co.uk, github.io), or a name with no known suffix."""
    parts = _suffixes()(name.rstrip("."))
    return not parts.domain or not parts.suffix


def without_scheme(url: str) -> str:
    """host[/path]: no scheme, no userinfo, no port (what PAN-OS and Cisco TID expect)."""
    rest = _SCHEME.sub("", url)
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        host = host[: host.find("]") + 1] if "]" in host else host
    else:
        host = host.partition(":")[0]
    return host + slash + path


def url_host(url: str) -> str:
    return without_scheme(url).partition("/")[0].strip("[]").lower()


def network(value: str) -> Network:
    return ipaddress.ip_network(value.strip(), strict=False)


def wide(net: Network, options: FeedOptions) -> bool:
    """Shorter than the configured minimum prefix (0.0.0.0/0 always is)."""
    least = options.min_prefix_ipv4 if net.version == 4 else options.min_prefix_ipv6
    return net.prefixlen == 0 or net.prefixlen < least


def collapsed(nets: List[Network], options: FeedOptions) -> List[Network]:
    """Overlapping and adjacent networks merged; a merged network shorter than the minimum is
    split back into networks of the minimum prefix (the same addresses, never broader)."""
    out: List[Network] = []
    for version in (4, 6):
        least = options.min_prefix_ipv4 if version == 4 else options.min_prefix_ipv6
        for net in ipaddress.collapse_addresses(n for n in nets if n.version == version):
            out.extend(net.subnets(new_prefix=least) if net.prefixlen < least else [net])
    return out


def accepts(kind: str, value: str, options: FeedOptions) -> bool:
    """Whether the format can carry this entry at all (so the size cap counts only entries
    that reach the list)."""
    if options.format == "edl" and kind in ("url", "domain"):
        text = without_scheme(value) if kind == "url" else value
        return len(("*." if options.wildcards and kind == "domain" else "") + text) <= MAX_EDL_ENTRY
    if options.format == "cisco":
        return len(value) == 64 if kind == "file" else kind != "ip" or _host(network(value))
    if options.format == "checkpoint" and kind == "ip":
        return network(value).version == 4
    return True


def _host(net: Network) -> bool:
    return net.prefixlen == net.max_prefixlen


def edl_lines(entries: List[Entry], options: FeedOptions) -> List[str]:
    if options.kind == "ip":
        return [str(n.network_address) if _host(n) else str(n)
                for n in collapsed([network(v) for _, v, _ in entries], options)]  # fmt: skip
    lines: List[str] = []
    for _, value, _ in entries:
        if options.kind == "url":
            lines.append(without_scheme(value))
        else:
            lines.append(value)
            if options.wildcards:
                lines.append("*." + value)
    return [x for x in dict.fromkeys(lines) if len(x) <= MAX_EDL_ENTRY]


def cisco_lines(entries: List[Entry], options: FeedOptions) -> List[str]:
    lines: List[str] = []
    for kind, value, _ in entries:
        if kind == "file" and len(value) != 64:
            continue  # TID takes SHA-256 only
        if kind == "ip":
            net = network(value)
            if not _host(net):
                continue  # no CIDR
            value = str(net.network_address)
        lines.append(without_scheme(value) if kind == "url" else value)
    return list(dict.fromkeys(lines))


def plain_lines(entries: List[Entry], options: FeedOptions) -> List[str]:
    return list(dict.fromkeys(without_scheme(v) if k == "url" else v for k, v, _ in entries))


def csv_lines(entries: List[Entry], options: FeedOptions) -> List[str]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for kind, value, obj in entries:
        labels = obj.get("labels", [])
        w.writerow([cell(c) for c in (
            value, kind, obj.get("confidence", ""), obj.get("valid_until", ""),
            ";".join(str(x) for x in labels) if isinstance(labels, list) else "",
            obj.get("name", ""))])  # fmt: skip
    return buf.getvalue().splitlines()


def confidence_word(confidence: Any) -> str:
    """STIX 2.1 appendix A's Low/Med/High scale: 1-29 low, 30-69 medium, 70-100 high."""
    number = confidence if isinstance(confidence, int) and not isinstance(confidence, bool) else 0
    return "high" if number >= 70 else "medium" if number >= 30 else "low"


def severity_word(obj: Dict[str, Any]) -> str:
    types = obj.get("indicator_types") or []
    if "malicious-activity" in types:
        return "critical" if confidence_word(obj.get("confidence")) == "high" else "high"
    return "medium" if "anomalous-activity" in types else "low"


def checkpoint_lines(entries: List[Entry], options: FeedOptions) -> List[str]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    seen = set()
    for kind, value, obj in entries:
        if kind == "ip":
            net = network(value)
            if net.version != 4:
                continue  # Check Point's IP types are IPv4 only
            if _host(net):
                typ, value = "IP", str(net.network_address)
            else:
                typ, value = "IP Range", f"{net[0]}-{net[-1]}"
        elif kind == "file":
            typ = _HASH_TYPE[len(value)]
        else:
            typ = "URL" if kind == "url" else "Domain"
        if (typ, value) in seen:
            continue
        seen.add((typ, value))
        # Hashes go to Anti-Virus; network observables to Anti-Bot (it enforces IPs).
        product = "AV" if kind == "file" else "AB"
        comment = str(obj.get("name", ""))[:200]
        w.writerow([f"vtconnect-{len(seen)}", value, typ, confidence_word(obj.get("confidence")),
                    severity_word(obj), product, cell(comment)])  # fmt: skip
    return [CHECKPOINT_HEADER, *buf.getvalue().splitlines()]


def cell(value: object) -> str:
    """Pulled feeds are someone else's text: a cell a spreadsheet would run as a formula gets a
    leading quote (CSV injection)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


LINES = {"plain": plain_lines, "csv": csv_lines, "edl": edl_lines, "checkpoint": checkpoint_lines,
         "cisco": cisco_lines}  # fmt: skip
CONTENT_TYPE = {"plain": "text/plain", "edl": "text/plain", "cisco": "text/plain",
                "csv": "text/csv", "checkpoint": "text/csv"}  # fmt: skip
