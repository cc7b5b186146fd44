"""What the emulator knows: objects by id (with the aliases it has served), reanalyses,
uploads, collections and notification feeds. Every object is synthesised on demand."""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Any, Dict, List, Optional, Tuple

from . import synth

HEX = re.compile(r"^[0-9a-f]+$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
RELATIONSHIPS = {
    "files": {
        "contacted_domains": "domain",
        "contacted_ips": "ip_address",
        "contacted_urls": "url",
        "bundled_files": "file",
        "dropped_files": "file",
        "execution_parents": "file",
    },
    "urls": {
        "contacted_domains": "domain",
        "last_serving_ip_address": "ip_address",
        "downloaded_files": "file",
    },
    "domains": {
        "resolutions": "resolution",
        "subdomains": "domain",
        "communicating_files": "file",
        "urls": "url",
    },
    "ip_addresses": {"resolutions": "resolution", "communicating_files": "file", "urls": "url"},
}
TYPE_OF = {"files": "file", "urls": "url", "domains": "domain", "ip_addresses": "ip_address"}
COLLECTION_OF = {v: k for k, v in TYPE_OF.items()}


class InvalidArgument(ValueError):
    pass


class Objects:
    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url
        self.file_alias: Dict[str, str] = {}  # md5/sha1 -> sha256
        self.file_hashes: Dict[str, Tuple[str, str, int]] = {}  # sha256 -> (md5, sha1, size)
        self.url_alias: Dict[str, str] = {}  # sha256 of url -> url
        self.overrides: Dict[Tuple[str, str], int] = {}  # (type, id) -> last_analysis_date
        self.analyses: Dict[str, Dict[str, Any]] = {}

    # -- resolving ids -------------------------------------------------------------------------
    def resolve(self, collection: str, given: str) -> Tuple[str, Optional[str]]:
        """(canonical id, fixture profile or None); raises InvalidArgument or KeyError."""
        if collection == "files":
            return self._file(given)
        if collection == "urls":
            url = self._url(given)
            return synth.sha256_hex(url), _url_fixture(url)
        if collection == "domains":
            d = given.lower().rstrip(".")
            if not DOMAIN.match(d):
                raise InvalidArgument(f"{given} is not a valid domain pattern")
            return d, _domain_fixture(d)
        try:
            ip = str(ipaddress.ip_address(given))
        except ValueError:
            raise InvalidArgument(f"{given} is not a valid IP address") from None
        return ip, "malicious" if ip == synth.MALICIOUS_IP else None

    def _file(self, given: str) -> Tuple[str, Optional[str]]:
        h = given.lower()
        if len(h) not in (32, 40, 64) or not HEX.match(h):
            raise InvalidArgument(f"{given} is not a valid resource identifier")
        for fixture, prof in ((synth.EICAR, "malicious"), (synth.EMPTY, "harmless")):
            if h in (fixture["md5"], fixture["sha1"], fixture["sha256"]):
                self.file_hashes[fixture["sha256"]] = (
                    fixture["md5"],
                    fixture["sha1"],
                    fixture["size"],
                )
                return fixture["sha256"], prof
        sha256 = self.file_alias.get(h, h if len(h) == 64 else None)
        if sha256 is None:
            sha256 = synth.sha256_hex("file:" + h)
            md5 = h if len(h) == 32 else synth.sha256_hex("md5:" + sha256)[:32]
            sha1 = h if len(h) == 40 else synth.sha256_hex("sha1:" + sha256)[:40]
            self.file_hashes.setdefault(sha256, (md5, sha1, 1024 + int(sha256[:5], 16)))
        elif sha256 not in self.file_hashes:
            self.file_hashes[sha256] = (
                synth.sha256_hex("md5:" + sha256)[:32],
                synth.sha256_hex("sha1:" + sha256)[:40],
                1024 + int(sha256[:5], 16),
            )
        md5, sha1, _ = self.file_hashes[sha256]
        self.file_alias[md5] = self.file_alias[sha1] = sha256
        return sha256, None

    def _url(self, given: str) -> str:
        if len(given) == 64 and HEX.match(given):
            if given in self.url_alias:
                return self.url_alias[given]
            raise KeyError(given)
        url = synth.decode_url_id(given)
        if url is None:
            raise InvalidArgument(f"{given} is not a valid URL identifier")
        self.url_alias[synth.sha256_hex(url)] = url
        return url

    # -- objects ---------------------------------------------------------------------------
    def data(self, collection: str, given: str, relationships: List[str] = ()) -> Dict[str, Any]:
        """The `data` member for GET /{collection}/{id}; KeyError when VirusTotal has no such
        object, InvalidArgument for a malformed id or relationship."""
        oid, fixed = self.resolve(collection, given)
        kind = TYPE_OF[collection]
        uploaded = collection == "files" and (kind, oid) in self.overrides
        if fixed is None and not uploaded and synth.is_missing(kind, oid):
            raise KeyError(given)
        attrs = self.attributes(collection, oid)
        data: Dict[str, Any] = {
            "type": kind,
            "id": oid,
            "links": {"self": f"{self.base_url}/api/v3/{collection}/{oid}"},
            "attributes": attrs,
        }
        if relationships:
            data["relationships"] = {
                rel: {
                    "data": self.related(collection, oid, rel),
                    "links": {
                        "self": f"{self.base_url}/api/v3/{collection}/{oid}/relationships/{rel}"
                    },
                }
                for rel in relationships
            }
        return data

    def attributes(self, collection: str, oid: str) -> Dict[str, Any]:
        """Attributes of a resolved object (canonical id)."""
        kind = TYPE_OF[collection]
        fixed = self.fixture(collection, oid)
        override = self.overrides.get((kind, oid))
        if collection == "files":
            md5, sha1, size = self.file_hashes[oid]
            a = synth.file_object(oid, md5, sha1, size, fixed, override)
            if oid == synth.EICAR["sha256"]:
                a["popular_threat_classification"]["suggested_threat_label"] = "virus.eicar/test"
                a["meaningful_name"], a["type_description"] = "eicar.com", "Text"
            elif oid == synth.EMPTY["sha256"]:
                a["trusted_verdict"] = {
                    "verdict": "goodware",
                    "organization": "Microsoft",
                    "filename": "empty",
                }
            return a
        if collection == "urls":
            return synth.url_object(self.url_alias[oid], fixed, override)
        if collection == "domains":
            return synth.domain_object(oid, fixed, override)
        return synth.ip_object(oid, fixed, override)

    def related(self, collection: str, oid: str, rel: str) -> List[Dict[str, str]]:
        target = RELATIONSHIPS[collection].get(rel)
        if target is None:
            raise InvalidArgument(f"{rel} is not a valid relationship for {collection}")
        rng = synth.rng_for("rel", collection, oid, rel)
        items = synth.descriptors(rng, target, rng.randint(0, 25))
        for d in items:
            if d["type"] == "url":
                self.url_alias[d["id"]] = d.pop("context_url")
        return items

    def full(self, descriptor: Dict[str, str]) -> Dict[str, Any]:
        """A related object in full (relationship endpoints without /relationships/)."""
        kind, oid = descriptor["type"], descriptor["id"]
        if kind == "resolution":
            rng = synth.rng_for("resolution", oid)
            return {
                "type": "resolution",
                "id": oid,
                "attributes": {
                    "ip_address": synth.random_ip(rng),
                    "host_name": f"host{rng.randint(1, 99)}.com",
                    "date": synth.today() - rng.randint(0, 300) * synth.DAY,
                },
            }
        collection = COLLECTION_OF[kind]
        if kind != "url":
            oid, _ = self.resolve(collection, oid)
        return {
            "type": kind,
            "id": oid,
            "links": {"self": f"{self.base_url}/api/v3/{collection}/{oid}"},
            "attributes": self.attributes(collection, oid),
        }

    def fixture(self, collection: str, oid: str) -> Optional[str]:
        if collection == "files":
            return {synth.EICAR["sha256"]: "malicious", synth.EMPTY["sha256"]: "harmless"}.get(oid)
        if collection == "urls":
            return _url_fixture(self.url_alias.get(oid, ""))
        if collection == "domains":
            return _domain_fixture(oid)
        return "malicious" if oid == synth.MALICIOUS_IP else None

    # -- analyses ----------------------------------------------------------------------------
    def new_analysis(self, collection: str, oid: str) -> str:
        now = int(time.time())
        self.overrides[(TYPE_OF[collection], oid)] = now
        prefix = {"files": "f", "urls": "u", "domains": "d", "ip_addresses": "i"}[collection]
        aid = f"{prefix}-{oid[:64]}-{now}-{len(self.analyses)}"
        self.analyses[aid] = {"collection": collection, "id": oid, "date": now, "polls": 0}
        return aid

    def register_upload(self, md5: str, sha1: str, sha256: str, size: int) -> str:
        self.file_hashes[sha256] = (md5, sha1, size)
        self.file_alias[md5] = self.file_alias[sha1] = sha256
        return self.new_analysis("files", sha256)


def _url_fixture(url: str) -> Optional[str]:
    host = re.sub(r"^[a-z]+://", "", url.lower()).split("/", 1)[0].split(":", 1)[0]
    if url == synth.MALICIOUS_URL or host == synth.MALICIOUS_DOMAIN:
        return "malicious"
    return "harmless" if host in synth.HARMLESS_DOMAINS else None


def _domain_fixture(d: str) -> Optional[str]:
    if d == synth.MALICIOUS_DOMAIN:
        return "malicious"
    return "harmless" if d in synth.HARMLESS_DOMAINS else None
