"""Observables: the hashes, URLs, domains and IP addresses we look up, validated and normalised.

`parse` is the only way in: it strips copy-and-paste debris, refangs, detects (or checks) the
kind and normalises, so that equal indicators become equal `Observable` objects and
`parse(obs.value, obs.kind) == obs` holds for every result (and `parse(obs.value) == obs`
unless auto-detection refuses the value, as it does bare file names such as invoice.zip).

Canonical forms: hashes lower case; IPs as `ipaddress` prints them, IPv4 inside IPv4-mapped
(::ffff:0:0/96) and IPv4-compatible (::/96) IPv6 unwrapped; names in IDNA 2008 with UTS 46
(the `idna` package: the stdlib codec is IDNA 2003 and turns straße.de into strasse.de); URLs
per RFC 3986 sections 6.2.2-6.2.3 (scheme and host case, percent-encoding hex case, unreserved
characters decoded, default port dropped, empty path "/"), without userinfo (credentials never
leave) and without fragment (never sent to a server). Path and query are otherwise kept as given.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, FrozenSet, NamedTuple, Optional

from .refang import refang

__all__ = [
    "FILE_EXTENSION_TLDS",
    "KIND_CHOICES",
    "InvalidObservable",
    "Kind",
    "Observable",
    "UrlParts",
    "classify",
    "hostname",
    "parse",
    "split_url",
]

GUI_BASE = "https://www.virustotal.com/gui"
MAX_URL_LENGTH = 2048
MAX_DOMAIN_LENGTH = 253
# A defanged value is longer than the clean one ("[.]" for "."); anything past this is rejected
# before any other work, so a 1 MB field costs nothing.
MAX_RAW_LENGTH = 4 * MAX_URL_LENGTH
URL_SCHEMES = ("http", "https", "ftp")
DEFAULT_PORTS = {"http": "80", "https": "443", "ftp": "21"}
# TLDs that are also common file extensions: a bare "invoice.zip" is a file name far more often
# than a domain, so auto-detection refuses it (the kind "domain" or "url" still accepts it).
FILE_EXTENSION_TLDS: FrozenSet[str] = frozenset(
    (
        "app",
        "cab",
        "cat",
        "md",
        "mk",
        "mov",
        "one",
        "pl",
        "pm",
        "ps",
        "pub",
        "py",
        "rs",
        "sh",
        "so",
        "tf",
        "zip",
    )
)


class Kind(str, enum.Enum):
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    URL = "url"
    DOMAIN = "domain"
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @property
    def collection(self) -> str:
        """The API v3 collection: /api/v3/<collection>/<id>."""
        return _COLLECTION[self]

    @property
    def gui_type(self) -> str:
        return _GUI_TYPE[self]

    @property
    def group(self) -> str:
        """What the cache keys by: all hashes are files, both IP versions are ip."""
        return _GROUP[self]

    @property
    def is_hash(self) -> bool:
        return self in HASH_KINDS

    def __str__(self) -> str:
        return self.value


HASH_KINDS: FrozenSet[Kind] = frozenset((Kind.MD5, Kind.SHA1, Kind.SHA256))
IP_KINDS: FrozenSet[Kind] = frozenset((Kind.IPV4, Kind.IPV6))
_HASH_BY_LENGTH = {32: Kind.MD5, 40: Kind.SHA1, 64: Kind.SHA256}
_GROUP = {
    Kind.MD5: "file",
    Kind.SHA1: "file",
    Kind.SHA256: "file",
    Kind.URL: "url",
    Kind.DOMAIN: "domain",
    Kind.IPV4: "ip",
    Kind.IPV6: "ip",
}
_COLLECTION = {
    k: {"file": "files", "url": "urls", "domain": "domains", "ip": "ip_addresses"}[g]
    for k, g in _GROUP.items()
}
_GUI_TYPE = {
    k: {"file": "file", "url": "url", "domain": "domain", "ip": "ip-address"}[g]
    for k, g in _GROUP.items()
}

KIND_CHOICES = (
    "auto",
    "file",
    "hash",
    "md5",
    "sha1",
    "sha256",
    "url",
    "domain",
    "ip",
    "ipv4",
    "ipv6",
)
_ALLOWED = {
    "auto": None,
    "file": HASH_KINDS,
    "hash": HASH_KINDS,
    "md5": frozenset((Kind.MD5,)),
    "sha1": frozenset((Kind.SHA1,)),
    "sha256": frozenset((Kind.SHA256,)),
    "url": frozenset((Kind.URL,)),
    "domain": frozenset((Kind.DOMAIN,)),
    "ip": IP_KINDS,
    "ipv4": frozenset((Kind.IPV4,)),
    # An IPv4-mapped (or -compatible) IPv6 address is the IPv4 address; ipv6 still accepts it.
    "ipv6": IP_KINDS,
}


class InvalidObservable(ValueError):
    """The value is not a usable indicator; str() says why in words."""


@dataclass(frozen=True)
class Observable:
    kind: Kind
    value: str  # normalised
    vt_id: str  # the id in the API path: hash, vt.url_id(url), domain, IP
    # The URL carried userinfo (user:password@) that was removed: it is never sent.
    userinfo_removed: bool = field(default=False, compare=False)

    @property
    def path(self) -> str:
        """The vt-py path, e.g. /files/<sha256>."""
        return f"/{self.kind.collection}/{self.vt_id}"

    @functools.cached_property
    def cache_key(self) -> str:
        # Computed once: the pipeline asks for it about a dozen times per value (a frozen
        # dataclass has an instance dict, which cached_property writes to directly).
        return f"{self.kind.group}:{self.vt_id}"

    @property
    def gui_link(self) -> str:
        if self.kind is Kind.URL:
            # The GUI names URLs by SHA-256, not by the API's base64 id.
            gui_id = hashlib.sha256(self.value.encode("utf-8")).hexdigest()
        else:
            gui_id = self.vt_id
        return f"{GUI_BASE}/{self.kind.gui_type}/{gui_id}"

    def __str__(self) -> str:
        return self.value


class UrlParts(NamedTuple):
    scheme: str
    userinfo: Optional[str]  # None: no "@" at all
    host: str  # without brackets for IPv6
    port: Optional[str]  # None: no ":" after the host
    rest: str  # path, query and fragment, as given
    bracketed: bool  # host was written [..]


_HEX = re.compile(r"[0-9a-fA-F]+")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)(.*)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s")
# Bidi and other invisible formatting characters: a classic way to disguise a URL.
_FORMAT = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]")
# Copy-and-paste debris that is never part of an indicator: removed wherever it appears.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_PAIRS = {
    '"': '"',
    "'": "'",
    "`": "`",
    "(": ")",
    "[": "]",
    "{": "}",
    "<": ">",
    "\u201c": "\u201d",
    "\u2018": "\u2019",
    "\u00ab": "\u00bb",
}
_HOSTNAME = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_IPV4ISH = re.compile(r"[0-9.]+")
_IPV6ISH = re.compile(r"[0-9a-fA-F:.%]+")
# A percent-encoded octet, or a "%" that starts none (kept as given).
_PERCENT = re.compile(r"%([0-9a-fA-F]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def split_url(url: str) -> Optional[UrlParts]:
    """Split scheme://[userinfo@]host[:port]rest without urllib (whose rules differ by version).

    Returns None when `url` has no scheme://authority form or its host part is malformed.
    """
    match = _URL.fullmatch(url)
    if match is None:
        return None
    scheme, authority, rest = match.groups()
    userinfo: Optional[str] = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
    bracketed = authority.startswith("[")
    if bracketed:
        end = authority.find("]")
        if end < 0:
            return None
        host, tail = authority[1:end], authority[end + 1 :]
        if tail and not tail.startswith(":"):
            return None
        port = tail[1:] if tail else None
    else:
        host, colon, port_text = authority.partition(":")
        port = port_text if colon else None
    return UrlParts(scheme, userinfo, host, port, rest, bracketed)


def parse(raw: Any, kind: Optional[str] = None) -> Observable:
    """Validate and normalise one indicator; raise InvalidObservable saying why it is unusable.

    `kind` is one of KIND_CHOICES (or a Kind); None and "auto" detect the kind.
    """
    if not isinstance(raw, str):
        raise InvalidObservable(f"expected text, got {type(raw).__name__}")
    key = "auto" if kind is None else str(kind).strip().lower()
    if key not in _ALLOWED:
        raise InvalidObservable(f"unknown kind {kind!r} (one of {', '.join(KIND_CHOICES)})")
    allowed = _ALLOWED[key]
    length = len(raw)
    # Fast path: a clean hash, the commonest input, costs one regex match.
    if length in _HASH_BY_LENGTH and _HEX.fullmatch(raw):
        found = _HASH_BY_LENGTH[length]
        if allowed is None or found in allowed:
            lower = raw.lower()
            return Observable(found, lower, lower)
    if length > MAX_RAW_LENGTH:
        raise InvalidObservable(f"too long ({length} characters) for an indicator")
    value = _clean(raw)
    if not value:
        raise InvalidObservable("empty value")
    if len(value) in _HASH_BY_LENGTH and _HEX.fullmatch(value):
        return _check(_parse_hash(value), allowed, key)
    if _CONTROL.search(value):
        raise InvalidObservable("contains a control character")
    if _FORMAT.search(value):
        raise InvalidObservable("contains an invisible formatting character")
    value = _strip(refang(value))
    if _SPACE.search(value):
        raise InvalidObservable("contains whitespace")
    if not value:
        raise InvalidObservable("empty value")
    if allowed is None:
        obs = _detect(value)
    elif allowed <= HASH_KINDS:
        obs = _parse_hash(value)
    elif allowed == IP_KINDS:
        if key == "ipv6" and ":" not in value:
            raise InvalidObservable(f"not an IPv6 address: {value!r}")
        obs = _parse_ip(value)
    elif Kind.URL in allowed:
        obs = _parse_url(value if "://" in value else "http://" + value)
    elif Kind.DOMAIN in allowed:
        if "/" in value:
            raise InvalidObservable(f"not a domain (contains '/'): {value!r}")
        obs = _parse_domain(value)
    else:
        obs = _parse_ip(value)
    return _check(obs, allowed, key)


def _check(obs: Observable, allowed: Optional[FrozenSet[Kind]], key: str) -> Observable:
    if allowed is not None and obs.kind not in allowed:
        raise InvalidObservable(f"expected {key}, got {obs.kind.value}: {obs.value!r}")
    return obs


def classify(value: str) -> Optional[Kind]:
    """The kind `parse` would detect for `value`, or None when it is no valid indicator."""
    try:
        return parse(value).kind
    except InvalidObservable:
        return None


def _clean(raw: str) -> str:
    if not raw.isascii():
        raw = raw.translate(_INVISIBLE)
    return _strip(raw)


def _strip(value: str) -> str:
    """Strip whitespace and the quotes or brackets an indicator is often wrapped in."""
    value = value.strip()
    while len(value) >= 2 and _PAIRS.get(value[0]) == value[-1]:
        value = value[1:-1].strip()
    return value


def _detect(value: str) -> Observable:
    if len(value) in _HASH_BY_LENGTH and _HEX.fullmatch(value):
        return _parse_hash(value)
    if "://" in value:
        return _parse_url(value)
    if _IPV4ISH.fullmatch(value):
        return _parse_ip(value)
    if ":" in value and _IPV6ISH.fullmatch(value.partition("%")[0]):
        return _parse_ip(value)  # "%" only to say that zone ids are refused
    if "/" in value:
        return _parse_schemeless_url(value, auto=True)
    if ":" in value:
        raise InvalidObservable(f"not a hash, URL, domain or IP address: {value!r}")
    obs = _parse_domain(value)
    _refuse_file_name(obs.value, value)
    return obs


def _refuse_file_name(name: str, value: str) -> None:
    tld = name.rpartition(".")[2]
    if tld in FILE_EXTENSION_TLDS:
        raise InvalidObservable(
            f"{value!r} looks like a file name (.{tld} is also a file extension); "
            "give the kind domain or url to look it up"
        )


def _parse_hash(value: str) -> Observable:
    found = _HASH_BY_LENGTH.get(len(value))
    if found is None or not _HEX.fullmatch(value):
        raise InvalidObservable(
            f"not a hash (32, 40 or 64 hex digits for MD5, SHA-1, SHA-256): {value[:80]!r}"
        )
    lower = value.lower()
    return Observable(found, lower, lower)


def _ip_address(value: str) -> Any:
    """An IPv4Address or IPv6Address with IPv4-mapped IPv6 unwrapped; InvalidObservable if bad."""
    if "%" in value:
        raise InvalidObservable(f"IPv6 zone ids are not accepted: {value!r}")
    if "/" in value:
        raise InvalidObservable(f"a network range, not one address: {value!r}")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidObservable(f"not a valid IP address: {value!r}") from None
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        # IPv4-compatible ::a.b.c.d (deprecated, RFC 4291): the IPv4 address too. :: and ::1
        # are IPv6's own unspecified and loopback addresses.
        if int(ip) >> 32 == 0 and int(ip) > 1:
            return ipaddress.IPv4Address(int(ip))
    return ip


def _parse_ip(value: str) -> Observable:
    ip = _ip_address(value)
    text = str(ip)  # IPv6: compressed, lower-case
    return Observable(Kind.IPV4 if ip.version == 4 else Kind.IPV6, text, text)


def hostname(host: str) -> str:
    """Lower-case, IDNA-encode and check a host name; raise InvalidObservable if not one."""
    name = host.lower() if host.isascii() else _idna_encode(host)
    name = name.rstrip(".")
    if not name:
        raise InvalidObservable(f"empty host name: {host!r}")
    if len(name) > MAX_DOMAIN_LENGTH:
        raise InvalidObservable(f"host name longer than {MAX_DOMAIN_LENGTH} characters")
    if not _HOSTNAME.fullmatch(name):
        raise InvalidObservable(f"not a valid host name: {host!r}")
    if "xn--" in name:
        _check_punycode(name)
    return name


def _idna_encode(host: str) -> str:
    # Imported late: only internationalised names need it. UTS 46 maps case and the
    # ideographic full stops; non-transitional keeps "ß" (IDNA 2008), unlike the stdlib codec.
    import idna

    labels = host.rstrip(".\u3002\uff0e\uff61")
    try:
        return idna.encode(labels, uts46=True, transitional=False).decode("ascii").lower()
    except (UnicodeError, ValueError):
        raise InvalidObservable(f"not a valid internationalised name: {host!r}") from None


def _check_punycode(name: str) -> None:
    import idna

    for label in name.split("."):
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (UnicodeError, ValueError):
                raise InvalidObservable(f"invalid punycode label {label!r}") from None


@functools.cache
def _tld_extractor() -> Any:
    # Imported late: tldextract costs ~0.2 s to import and hash lookups never need it.
    import tldextract

    # Offline: the bundled public suffix list snapshot, no fetch, no cache directory.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def _parse_domain(value: str) -> Observable:
    if len(value) > 4 * MAX_DOMAIN_LENGTH:
        raise InvalidObservable(f"domain longer than {MAX_DOMAIN_LENGTH} characters")
    name = hostname(value)
    if _IPV4ISH.fullmatch(name):
        raise InvalidObservable(f"not a valid IP address: {value!r}")
    parts = _tld_extractor()(name)
    if not parts.suffix:
        raise InvalidObservable(f"{name!r} has no known public suffix")
    if not parts.domain:
        raise InvalidObservable(f"{name!r} is a public suffix, not a domain")
    return Observable(Kind.DOMAIN, name, name)


def _url_id(url: str) -> str:
    # vt.url_id's formula, written out: importing vt pulls in aiohttp (~0.2 s), which answers
    # from the cache never need (tests/core compare the two).
    return base64.urlsafe_b64encode(url.encode()).decode().strip("=")


def _parse_url(value: str) -> Observable:
    parts = split_url(value)
    if parts is None:
        raise InvalidObservable(f"not a valid URL: {value[:100]!r}")
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise InvalidObservable(f"URL scheme {scheme!r} is not one of {', '.join(URL_SCHEMES)}")
    host = parts.host
    if "%" in host:
        host = _percent_normalise(host)
    if not host:
        raise InvalidObservable(f"URL without a host: {value[:100]!r}")
    if parts.bracketed:
        ip = _ip_address(host)
        host_text = f"[{ip}]" if ip.version == 6 else str(ip)
    elif _IPV4ISH.fullmatch(host) and host.count(".") == 3:
        host_text = str(_ip_address(host))
    else:
        host_text = hostname(host)
    port = parts.port
    if port is not None:
        if port and (not port.isdigit() or not port.isascii() or int(port) > 65535):
            raise InvalidObservable(f"bad port {port!r} in URL")
        port = str(int(port)) if port else ""
        if port in ("", DEFAULT_PORTS[scheme]):
            port = None
    rest = parts.rest.partition("#")[0]  # the fragment never reaches a server
    if not rest.startswith("/"):
        rest = "/" + rest  # empty path, or a query right after the authority
    if "%" in rest:
        rest = _percent_normalise(rest)
    url = f"{scheme}://{host_text}{'' if port is None else ':' + port}{rest}"
    if len(url) > MAX_URL_LENGTH:
        raise InvalidObservable(f"URL longer than {MAX_URL_LENGTH} characters")
    return Observable(Kind.URL, url, _url_id(url), userinfo_removed=parts.userinfo is not None)


def _percent_octet(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _percent_normalise(text: str) -> str:
    """Upper-case hex in percent-encodings and decode those of unreserved characters (RFC 3986
    6.2.2.1-2). Repeated until nothing changes, so the result is a fixed point: decoding
    "%%34%31" makes a new "%41". A pass that decodes shortens the text by two thirds of what it
    decodes, so crafted input costs a few passes at most."""
    while True:
        done = _PERCENT.sub(_percent_octet, text)
        if done == text:
            return done
        text = done


def _parse_schemeless_url(value: str, auto: bool = False) -> Observable:
    """www.evil.com/path or 1.2.3.4/x.exe: a URL without its scheme; 10.0.0.0/8 is a range."""
    head, _, tail = value.partition("/")
    host = head.rpartition("@")[2].partition(":")[0]
    if _IPV4ISH.fullmatch(host) or (":" in head and _IPV6ISH.fullmatch(head)):
        if tail.isdigit():
            raise InvalidObservable(f"a network range, not one address: {value!r}")
        _ip_address(host)
    else:
        # Only a registrable domain makes "x/y" a URL; "a.out/core" is a file path.
        name = _parse_domain(host).value
        if auto:
            _refuse_file_name(name, value)  # backup.zip/data.sql is a path in an archive
    return _parse_url("http://" + value)
