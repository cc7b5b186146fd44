"""Relationship descriptors per object kind, as VirusTotal API v3 documents them per collection.

Asking `?relationships=x` of a collection that has no relationship `x` is a 400 that costs a
call and gives no verdict, so each lookup sends only the descriptors valid for its kind.

Configuration (`virustotal.relationships`) is either a flat list, applied to every kind where the
descriptor exists (so `["contacted_domains", "contacted_ips"]` goes to files and URLs only), or a
table per kind (`{file = [...], url = [...], domain = [...], ip = [...]}`). Configured settings
keep one tuple of strings: flat names as they are, per-kind names as `kind:name`.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Mapping, Tuple


def _names(text: str) -> FrozenSet[str]:
    return frozenset(text.split())


# The descriptors every account may ask for plus those of premium tiers (VirusTotal answers 403
# for a relationship the key lacks the privilege for; that is the key's business, not a typo).
FILES: FrozenSet[str] = _names(
    """analyses behaviours bundled_files carbonblack_children carbonblack_parents
    ciphered_bundled_files ciphered_parents clues collections comments compressed_parents
    contacted_domains contacted_ips contacted_urls dropped_files email_attachments email_parents
    embedded_domains embedded_ips embedded_urls execution_parents graphs itw_domains itw_ips
    itw_urls memory_pattern_domains memory_pattern_ips memory_pattern_urls overlay_children
    overlay_parents pcap_children pcap_parents pe_resource_children pe_resource_parents
    related_references related_threat_actors screenshots sigma_analysis similar_files submissions
    urls_for_embedded_js user_votes votes"""
)
URLS: FrozenSet[str] = _names(
    """analyses collections comments communicating_files contacted_domains contacted_ips
    downloaded_files embedded_js_files graphs last_serving_ip_address memory_pattern_parents
    network_location redirecting_urls redirects_to referrer_files referrer_urls related_comments
    related_references related_threat_actors submissions urls_related_by_tracker_id user_votes
    votes"""
)
DOMAINS: FrozenSet[str] = _names(
    """caa_records cname_records collections comments communicating_files downloaded_files graphs
    historical_ssl_certificates historical_whois immediate_parent mx_records ns_records parent
    referrer_files related_comments related_references related_threat_actors resolutions
    siblings soa_records subdomains urls user_votes votes"""
)
IP_ADDRESSES: FrozenSet[str] = _names(
    """collections comments communicating_files downloaded_files graphs
    historical_ssl_certificates historical_whois referrer_files related_comments
    related_references related_threat_actors resolutions urls user_votes votes"""
)
BY_COLLECTION: Dict[str, FrozenSet[str]] = {
    "files": FILES,
    "urls": URLS,
    "domains": DOMAINS,
    "ip_addresses": IP_ADDRESSES,
}
# How the configuration names kinds -> collection.
KINDS = {"file": "files", "url": "urls", "domain": "domains", "ip": "ip_addresses"}
KINDS["ip_address"] = "ip_addresses"


class UnknownRelationship(ValueError):
    """A descriptor that no collection (or not the named one) has; config.py makes it a
    ConfigError naming the key."""


def parse(value: Any) -> Tuple[str, ...]:
    """The configured value (list or table) as the settings keep it; raises ValueError."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, str) for v in value):
            raise UnknownRelationship("must be a list of strings or a table of lists per kind")
        names = tuple(v.strip() for v in value)
        for name in names:
            if not any(name in valid for valid in BY_COLLECTION.values()):
                raise UnknownRelationship(f"{name!r} is not a relationship of any kind")
        return names
    if isinstance(value, Mapping):
        out: List[str] = []
        for kind, names in value.items():
            collection = KINDS.get(str(kind))
            if collection is None:
                raise UnknownRelationship(
                    f"unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})"
                )
            if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
                raise UnknownRelationship(f"{kind} must be a list of strings")
            for name in (n.strip() for n in names):
                if name not in BY_COLLECTION[collection]:
                    raise UnknownRelationship(f"{name!r} is not a relationship of {collection}")
                out.append(f"{kind}:{name}")
        return tuple(out)
    raise UnknownRelationship("must be a list of strings or a table of lists per kind")


def per_collection(configured: Tuple[str, ...]) -> Dict[str, Tuple[str, ...]]:
    """collection -> the descriptors to send with its GET, in configured order, no repeats."""
    out: Dict[str, List[str]] = {c: [] for c in BY_COLLECTION}
    for item in configured:
        kind, sep, name = item.partition(":")
        if sep:
            targets = [KINDS[kind]] if kind in KINDS else []
        else:
            name, targets = kind, [c for c, valid in BY_COLLECTION.items() if kind in valid]
        for collection in targets:
            if name in BY_COLLECTION[collection] and name not in out[collection]:
                out[collection].append(name)
    return {c: tuple(names) for c, names in out.items()}
