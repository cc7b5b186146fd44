"""What the emulator knows: objects by id (with every alias it has served), reanalyses and
uploads. Objects are synthesised on demand; only aliases and overrides are kept in memory."""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import fixtures
from .paging import encode_cursor
from .synth import DAY, Synth, decode_url_id, sha256_hex

HEX = re.compile(r"^[0-9a-f]+$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
# Per collection, as VirusTotal documents them: descriptor -> the type of the related objects the
# emulator synthesises ("" for kinds it does not model, answered with an empty list). Any other
# descriptor is a 400, as VirusTotal answers it.
_UNMODELLED = [
    "collections",
    "comments",
    "graphs",
    "related_references",
    "related_threat_actors",
    "user_votes",
    "votes",
]
RELATIONSHIPS: Dict[str, Dict[str, str]] = {
    "files": {
        **dict.fromkeys(_UNMODELLED + ["analyses", "submissions"], ""),
        **dict.fromkeys(["behaviours", "clues", "screenshots", "sigma_analysis"], ""),
        "contacted_domains": "domain",
        "contacted_ips": "ip_address",
        "contacted_urls": "url",
        **dict.fromkeys(["embedded_domains", "itw_domains", "memory_pattern_domains"], "domain"),
        **dict.fromkeys(["embedded_ips", "itw_ips", "memory_pattern_ips"], "ip_address"),
        **dict.fromkeys(
            ["embedded_urls", "itw_urls", "memory_pattern_urls", "urls_for_embedded_js"], "url"
        ),
        **dict.fromkeys(
            [
                "bundled_files",
                "carbonblack_children",
                "carbonblack_parents",
                "ciphered_bundled_files",
                "ciphered_parents",
                "compressed_parents",
                "dropped_files",
                "email_attachments",
                "email_parents",
                "execution_parents",
                "overlay_children",
                "overlay_parents",
                "pcap_children",
                "pcap_parents",
                "pe_resource_children",
                "pe_resource_parents",
                "similar_files",
            ],
            "file",
        ),
    },
    "urls": {
        **dict.fromkeys(_UNMODELLED + ["analyses", "submissions", "related_comments"], ""),
        "contacted_domains": "domain",
        "network_location": "domain",
        "contacted_ips": "ip_address",
        "last_serving_ip_address": "ip_address",
        **dict.fromkeys(
            [
                "communicating_files",
                "downloaded_files",
                "embedded_js_files",
                "memory_pattern_parents",
                "referrer_files",
            ],
            "file",
        ),
        **dict.fromkeys(
            ["redirecting_urls", "redirects_to", "referrer_urls", "urls_related_by_tracker_id"],
            "url",
        ),
    },
    "domains": {
        **dict.fromkeys(_UNMODELLED + ["related_comments"], ""),
        **dict.fromkeys(
            [
                "caa_records",
                "cname_records",
                "historical_ssl_certificates",
                "historical_whois",
                "mx_records",
                "ns_records",
                "soa_records",
            ],
            "",
        ),
        "resolutions": "resolution",
        **dict.fromkeys(["subdomains", "siblings", "parent", "immediate_parent"], "domain"),
        **dict.fromkeys(["communicating_files", "downloaded_files", "referrer_files"], "file"),
        "urls": "url",
    },
    "ip_addresses": {
        **dict.fromkeys(_UNMODELLED + ["related_comments"], ""),
        **dict.fromkeys(["historical_ssl_certificates", "historical_whois"], ""),
        "resolutions": "resolution",
        **dict.fromkeys(["communicating_files", "downloaded_files", "referrer_files"], "file"),
        "urls": "url",
    },
}
TYPE_OF = {"files": "file", "urls": "url", "domains": "domain", "ip_addresses": "ip_address"}
COLLECTION_OF = {v: k for k, v in TYPE_OF.items()}
INLINE_RELATED = 10  # descriptors inlined by ?relationships=; the rest via links.next


class InvalidArgument(ValueError):
    pass


class NotFound(KeyError):
    pass


class Objects:
    def __init__(self, synth: Optional[Synth] = None, base_url: str = "") -> None:
        self.synth = synth or Synth()
        self.base_url = base_url
        self.file_alias: Dict[str, str] = {}  # md5/sha1 -> sha256
        self.file_hashes: Dict[str, Tuple[str, str, int]] = {}  # sha256 -> (md5, sha1, size)
        self.url_alias: Dict[str, str] = {}  # sha256 of url -> url
        self.resolutions: Dict[str, Tuple[str, str]] = {}  # resolution id -> (ip, host)
        self.overrides: Dict[Tuple[str, str], int] = {}  # (type, id) -> last_analysis_date
        self.analyses: Dict[str, Dict[str, Any]] = {}

    # -- resolving ids -------------------------------------------------------------------------
    def resolve(self, collection: str, given: str) -> str:
        """The canonical id; raises InvalidArgument for a malformed id, NotFound for a URL
        sha256 the emulator has never seen (it cannot invert the hash)."""
        if collection == "files":
            return self._file(given)
        if collection == "urls":
            return sha256_hex(self._url(given))
        if collection == "domains":
            d = given.lower().rstrip(".")
            if not DOMAIN.match(d):
                raise InvalidArgument(f"Domain {given!r} is not a valid domain pattern")
            return d
        try:
            return str(ipaddress.ip_address(given))
        except ValueError:
            raise InvalidArgument(f"{given!r} is not a valid IP address") from None

    def _file(self, given: str) -> str:
        h = given.lower()
        if len(h) not in (32, 40, 64) or not HEX.match(h):
            raise InvalidArgument(f"{given!r} is not a valid resource identifier")
        fixture = fixtures.file_fixture(h)
        if fixture is not None:
            hashes = fixture[1]
            sha256 = str(hashes["sha256"])
            self.file_hashes[sha256] = (
                str(hashes["md5"]),
                str(hashes["sha1"]),
                int(hashes["size"]),
            )
        else:
            sha256 = self.file_alias.get(h) or (h if len(h) == 64 else sha256_hex(h))
            if sha256 not in self.file_hashes:
                # an md5/sha1 seen first keeps its own value; the other hashes derive from it
                md5 = h if len(h) == 32 else sha256_hex("md5:" + sha256)[:32]
                sha1 = h if len(h) == 40 else sha256_hex("sha1:" + sha256)[:40]
                self.file_hashes[sha256] = (md5, sha1, 1024 + int(sha256[:5], 16))
        md5, sha1, _ = self.file_hashes[sha256]
        self.file_alias[md5] = self.file_alias[sha1] = sha256
        return sha256

    def _url(self, given: str) -> str:
        if len(given) == 64 and HEX.match(given.lower()):
            url = self.url_alias.get(given.lower())
            if url is None:
                raise NotFound(f'URL "{given}" not found')
            return url
        url = decode_url_id(given)
        if url is None:
            raise InvalidArgument(f"{given!r} is not a valid URL identifier")
        self.url_alias[sha256_hex(url)] = url
        return url

    def fixture(self, collection: str, oid: str) -> Optional[str]:
        if collection == "files":
            return fixtures.file_profile(oid)
        if collection == "urls":
            return fixtures.url_profile(self.url_alias.get(oid, ""))
        if collection == "domains":
            return fixtures.domain_profile(oid)
        return fixtures.ip_profile(oid)

    def exists(self, collection: str, oid: str) -> bool:
        kind = TYPE_OF[collection]
        return (
            self.fixture(collection, oid) is not None
            or (kind, oid) in self.overrides  # uploaded or (re)analysed: VirusTotal has it now
            or not self.synth.is_missing(kind, oid)
        )

    # -- objects ---------------------------------------------------------------------------
    def data(
        self, collection: str, given: str, relationships: Sequence[str] = ()
    ) -> Dict[str, Any]:
        """The `data` member for GET /{collection}/{id}."""
        oid = self.resolve(collection, given)
        for rel in relationships:
            self._target(collection, rel)  # 400 before 404, as VirusTotal checks arguments first
        if not self.exists(collection, oid):
            raise NotFound(f'{TYPE_OF[collection].replace("_", " ").title()} "{given}" not found')
        data = self.full({"type": TYPE_OF[collection], "id": oid})
        if relationships:
            data["relationships"] = {
                rel: self._inline(collection, oid, rel) for rel in relationships
            }
        return data

    def _inline(self, collection: str, oid: str, rel: str) -> Dict[str, Any]:
        items = self.related(collection, oid, rel)
        base = f"{self.base_url}/api/v3/{collection}/{oid}"
        out: Dict[str, Any] = {
            "data": items[:INLINE_RELATED],
            "meta": {"count": len(items)},
            "links": {"self": f"{base}/relationships/{rel}", "related": f"{base}/{rel}"},
        }
        if len(items) > INLINE_RELATED:
            cursor = encode_cursor(INLINE_RELATED)
            out["meta"]["cursor"] = cursor
            out["links"]["next"] = f"{base}/relationships/{rel}?cursor={cursor}&limit=10"
        return out

    def attributes(self, collection: str, oid: str) -> Dict[str, Any]:
        """Attributes of a resolved object (canonical id)."""
        kind = TYPE_OF[collection]
        fixed = self.fixture(collection, oid)
        override = self.overrides.get((kind, oid))
        if collection == "files":
            if oid not in self.file_hashes:
                self._file(oid)
            md5, sha1, size = self.file_hashes[oid]
            return self.synth.file(oid, md5, sha1, size, fixed, override)
        if collection == "urls":
            return self.synth.url(self.url_alias[oid], fixed, override)
        if collection == "domains":
            return self.synth.domain(oid, fixed, override)
        return self.synth.ip(oid, fixed, override)

    def _target(self, collection: str, rel: str) -> str:
        target = RELATIONSHIPS[collection].get(rel)
        if target is None:
            known = ", ".join(sorted(RELATIONSHIPS[collection]))
            raise InvalidArgument(
                f"{rel!r} is not a valid relationship for {collection} (supported: {known})"
            )
        return target

    def related(self, collection: str, oid: str, rel: str) -> List[Dict[str, str]]:
        target = self._target(collection, rel)
        if not target:
            return []
        rng = self.synth.rng("rel", collection, oid, rel)
        single = ("last_serving_ip_address", "network_location", "parent", "immediate_parent")
        most = 1 if rel in single else 25
        n = rng.randint(0, most) if self.fixture(collection, oid) != "harmless" else 0
        items = self.synth.descriptors(rng, target, n, oid, TYPE_OF[collection])
        for d in items:
            if "url" in d:
                self.url_alias[d["id"]] = d.pop("url")
            if "ip" in d:
                self.resolutions[d["id"]] = (d.pop("ip"), d.pop("host"))
        return items

    def full(self, descriptor: Dict[str, str]) -> Dict[str, Any]:
        """An object in full from its descriptor (relationship endpoints, feeds, searches)."""
        kind, oid = descriptor["type"], descriptor["id"]
        if kind == "resolution":
            ip, host = self.resolutions[oid]
            rng = self.synth.rng("resolution", oid)
            return {
                "type": "resolution",
                "id": oid,
                "links": {"self": f"{self.base_url}/api/v3/resolutions/{oid}"},
                "attributes": {
                    "ip_address": ip,
                    "host_name": host,
                    "date": self.synth.ref - rng.randint(0, 300) * DAY,
                    "resolver": "VirusTotal",
                },
            }
        collection = COLLECTION_OF[kind]
        if kind != "url":
            oid = self.resolve(collection, oid)
        return {
            "type": kind,
            "id": oid,
            "links": {"self": f"{self.base_url}/api/v3/{collection}/{oid}"},
            "attributes": self.attributes(collection, oid),
        }

    def remember_url(self, url: str) -> str:
        oid = sha256_hex(url)
        self.url_alias[oid] = url
        return oid

    # -- analyses ----------------------------------------------------------------------------
    def new_analysis(self, collection: str, oid: str, now: Optional[float] = None) -> str:
        """Registers an analysis; the object's last_analysis_date becomes now."""
        ts = int(time.time() if now is None else now)
        self.overrides[(TYPE_OF[collection], oid)] = ts
        prefix = {"files": "f", "urls": "u", "domains": "d", "ip_addresses": "i"}[collection]
        aid = f"{prefix}-{oid}-{ts}"
        if aid in self.analyses:  # several in the same second
            aid = f"{aid}-{len(self.analyses)}"
        self.analyses[aid] = {"collection": collection, "id": oid, "date": ts, "polls": 0}
        return aid

    def register_upload(self, md5: str, sha1: str, sha256: str, size: int) -> str:
        if fixtures.file_fixture(sha256) is None:
            self.file_hashes[sha256] = (md5, sha1, size)
            self.file_alias[md5] = self.file_alias[sha1] = sha256
        else:
            self._file(sha256)
        return self.new_analysis("files", sha256)

    def reset(self) -> None:
        self.overrides.clear()
        self.analyses.clear()
