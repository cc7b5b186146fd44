"""The [lists] section: values never looked up nor published, and verdicts analysts have fixed.

Like the allow lists of SOC tools (Splunk ES, MISP warninglists, XSOAR exclusions), three
lists of entries, each entry one of:

- a value: a hash, URL, domain or IP address, in any spelling `parse` accepts;
- a domain suffix: `.example.org` or `*.example.org`, the domain and every name under it;
- a network: `10.0.0.0/8`, `2001:db8::/32`, every address in it.

`ignore` (own domains, partners, CDNs, sinkholes): never looked up, never published; the
verdict is `skipped`. An ignored host also covers every URL on it. `force_harmless`
(analyst-confirmed false positives) and `force_malicious` answer that verdict without a
lookup; they decide only for the values they name (a forced-harmless domain does not make
every URL on it harmless).

The most specific rule wins: a value before a suffix or network, a longer suffix or prefix
before a shorter one, an exact host before a suffix for URLs. The same entry in two lists is a
configuration error. Matching runs before the cache and the quota governor: a listed value
costs no call and counts no cache hit.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from .config import ConfigError, ListsSettings
from .observable import IP_KINDS, InvalidObservable, Kind, Observable, hostname, parse, split_url
from .verdict import Verdict

__all__ = ["LIST_NAMES", "Lists", "Rule", "matcher"]

# Each list and the verdict it gives.
LIST_NAMES: Dict[str, Verdict] = {
    "ignore": Verdict.SKIPPED,
    "force_malicious": Verdict.MALICIOUS,
    "force_harmless": Verdict.HARMLESS,
}
_SCORE = {Verdict.SKIPPED: 0, Verdict.MALICIOUS: 100, Verdict.HARMLESS: 0}
_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass(frozen=True)
class Rule:
    """One entry of one list, as written in the configuration."""

    list: str  # "ignore", "force_malicious", "force_harmless"
    entry: str

    @property
    def verdict(self) -> Verdict:
        return LIST_NAMES[self.list]

    @property
    def score(self) -> int:
        return _SCORE[self.verdict]

    @property
    def reason(self) -> str:
        """The verdict's reason, naming the rule."""
        if self.list == "ignore":
            effect = "on the ignore list, never looked up or published"
        else:
            effect = f"forced {self.verdict.value} (analyst decision), not looked up"
        return f"[lists] {self.list} entry {self.entry!r}: {effect}"


class Lists:
    """The compiled lists; `match` answers the rule that decides for an observable, or None."""

    def __init__(self, settings: ListsSettings) -> None:
        self.settings = settings
        self._exact: Dict[Tuple[str, str], Rule] = {}  # (kind group, value)
        self._suffixes: Dict[str, Rule] = {}  # "example.org" for ".example.org"
        # (IP version, prefix length) -> network address >> host bits -> rule, longest first
        self._networks: Dict[Tuple[int, int], Dict[int, Rule]] = {}
        for name in LIST_NAMES:
            for entry in getattr(settings, name):
                self._add(Rule(name, entry), entry)
        self._networks = dict(sorted(self._networks.items(), key=lambda kv: -kv[0][1]))
        self._empty = not (self._exact or self._suffixes or self._networks)

    def __bool__(self) -> bool:
        return not self._empty

    # -- building --------------------------------------------------------------------------
    def _add(self, rule: Rule, entry: str) -> None:
        text = entry.strip() if isinstance(entry, str) else ""
        if not text:
            raise ConfigError(f"lists.{rule.list}: empty entry")
        if text.startswith(("*.", ".")):
            try:
                name = hostname(text.lstrip("*").lstrip("."))
            except InvalidObservable as exc:
                raise ConfigError(f"lists.{rule.list}: bad suffix {entry!r}: {exc}") from None
            self._put(self._suffixes, name, rule)
            return
        network = _network(text, rule)
        if network is not None:
            bucket = self._networks.setdefault((network.version, network.prefixlen), {})
            key = int(network.network_address) >> (network.max_prefixlen - network.prefixlen)
            self._put(bucket, key, rule)
            return
        self._put(self._exact, _exact_key(text, rule), rule)

    @staticmethod
    def _put(table: Dict[Any, Rule], key: Any, rule: Rule) -> None:
        old = table.get(key)
        if old is not None and old.list != rule.list:
            raise ConfigError(
                f"lists: {rule.entry!r} is in both {old.list} and {rule.list}; keep one"
            )
        table.setdefault(key, rule)

    # -- matching --------------------------------------------------------------------------
    def match(self, obs: Observable) -> Optional[Rule]:
        if self._empty:
            return None
        rule = self._exact.get((obs.kind.group, obs.value))
        if rule is not None:
            return rule
        kind = obs.kind
        if kind is Kind.DOMAIN:
            return self._by_suffix(obs.value, ignore_only=False)
        if kind in IP_KINDS:
            return self._by_network(ipaddress.ip_address(obs.value), ignore_only=False)
        if kind is Kind.URL:
            return self._by_url_host(obs.value)
        return None

    def match_any(self, observables: Iterable[Observable]) -> Optional[Rule]:
        """The first rule matching any of several spellings (a file's MD5, SHA-1, SHA-256)."""
        for obs in observables:
            rule = self.match(obs)
            if rule is not None:
                return rule
        return None

    def match_value(self, kind: str, value: str, report: Any = None) -> Optional[Rule]:
        """The rule for a normalised value of a kind ("md5", "url", ...); a file's other
        hashes from its report (when given) are tried too."""
        if self._empty:
            return None
        spellings = [(value, kind)]
        if report is not None and getattr(report, "kind", "") == "file":
            spellings += [(h, None) for h in (report.sha256, report.sha1, report.md5) if h]
        observables = []
        for text, of_kind in spellings:
            try:
                observables.append(parse(text, of_kind))
            except InvalidObservable:
                continue
        return self.match_any(observables)

    def _by_suffix(self, name: str, ignore_only: bool) -> Optional[Rule]:
        if not self._suffixes:
            return None
        while name:
            rule = self._suffixes.get(name)
            if rule is not None and (not ignore_only or rule.list == "ignore"):
                return rule
            name = name.partition(".")[2]
        return None

    def _by_network(self, ip: Any, ignore_only: bool) -> Optional[Rule]:
        number = int(ip)
        for (version, prefix), bucket in self._networks.items():
            if version != ip.version:
                continue
            rule = bucket.get(number >> (ip.max_prefixlen - prefix))
            if rule is not None and (not ignore_only or rule.list == "ignore"):
                return rule
        return None

    def _by_url_host(self, url: str) -> Optional[Rule]:
        """Only the ignore list covers the URLs on a listed host."""
        parts = split_url(url)
        if parts is None:
            return None
        host = parts.host
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            rule = self._exact.get(("domain", host))
            if rule is not None and rule.list == "ignore":
                return rule
            return self._by_suffix(host, ignore_only=True)
        rule = self._exact.get(("ip", str(ip)))
        if rule is not None and rule.list == "ignore":
            return rule
        return self._by_network(ip, ignore_only=True)


def _network(text: str, rule: Rule) -> Optional[_Network]:
    """The network an entry names, None when it names none; ConfigError for a bad CIDR."""
    address, slash, bits = text.partition("/")
    if not slash or not bits.isdigit():
        return None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None  # example.org/24 is a URL path, not a range
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ConfigError(f"lists.{rule.list}: bad network {text!r}: {exc}") from None


def _exact_key(text: str, rule: Rule) -> Tuple[str, str]:
    errors: List[str] = []
    # Auto-detection first; a name it refuses as a file name (corp.sh) may still be a domain.
    for kind in (None, "domain"):
        try:
            obs = parse(text, kind)
        except InvalidObservable as exc:
            errors.append(str(exc))
            continue
        return obs.kind.group, obs.value
    if "/" not in text and ":" not in text:
        try:  # an internal name with no public suffix (printer.corp) is still a name
            return "domain", hostname(text)
        except InvalidObservable:
            pass
    raise ConfigError(
        f"lists.{rule.list}: {text!r} is not a hash, URL, domain, IP address, "
        f"suffix (.example.org) or network (10.0.0.0/8): {errors[0]}"
    )


@functools.lru_cache(maxsize=16)
def matcher(settings: ListsSettings) -> Lists:
    """The compiled lists for these settings (compiled once per process)."""
    return Lists(settings)
