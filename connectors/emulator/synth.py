"""Deterministic synthetic VirusTotal attributes in the API's real shapes.

The same id always gives the same attributes: every draw comes from a random.Random seeded with
the sha256 of (seed, kind, id). Dates count back from a reference day fixed when the emulator
starts (or pinned in its config), so answers do not drift while it runs, and about a third of
the reports are older than 30 days, which exercises "rescan after N days".
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import random
import time
from typing import Any, Dict, List, Optional, Tuple

from . import engines
from .fixtures import EICAR, EMPTY

DAY = 86400
NOT_FOUND_SHARE = 0.10
FILE_STATS = (
    "harmless",
    "malicious",
    "suspicious",
    "undetected",
    "timeout",
    "type-unsupported",
    "confirmed-timeout",
    "failure",
)
NET_STATS = ("harmless", "malicious", "suspicious", "undetected", "timeout")


def reference_day(at: Optional[float] = None) -> int:
    """00:00 UTC of `at` (default: now)."""
    return int((time.time() if at is None else at) // DAY) * DAY


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def rng_for(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def decode_url_id(url_id: str) -> Optional[str]:
    try:
        raw = base64.b64decode(url_id + "=" * (-len(url_id) % 4), altchars=b"-_", validate=True)
        url = raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return url if "://" in url or "." in url else None


def random_ip(rng: random.Random) -> str:
    while True:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if ip.is_global and not ip.is_multicast:
            return str(ip)


class Synth:
    def __init__(self, reference_time: Optional[float] = None, seed: int = 0) -> None:
        self.ref = reference_day(reference_time)
        self.seed = seed

    def rng(self, *parts: str) -> random.Random:
        # seed 0 keeps the default universe; any other seed gives a different one
        return rng_for(*parts) if not self.seed else rng_for(str(self.seed), *parts)

    # -- profiles -----------------------------------------------------------------------------
    def profile(self, kind: str, oid: str, fixed: Optional[str] = None) -> str:
        """clean | low | malicious | harmless (fixtures) | missing"""
        if fixed:
            return fixed
        rng = self.rng(kind, oid)  # the same draws as earlier versions: ids keep their verdict
        if rng.random() < NOT_FOUND_SHARE:
            return "missing"
        r = rng.random()
        return "clean" if r < 0.55 else "low" if r < 0.70 else "malicious"

    def is_missing(self, kind: str, oid: str) -> bool:
        return self.profile(kind, oid) == "missing"

    # -- shared parts ---------------------------------------------------------------------------
    def last_date(self, rng: random.Random, override: Optional[int]) -> int:
        if override:
            return override
        days = rng.randint(0, 30) if rng.random() < 0.65 else rng.randint(31, 400)
        return self.ref - days * DAY - rng.randint(1, DAY - 1)

    def _analysis(
        self, rng: random.Random, kind: str, prof: str, oid: str, last: int
    ) -> Tuple[Dict[str, Any], Dict[str, int]]:
        file = kind == "file"
        names = engines.FILE_ENGINES if file else engines.URL_ENGINES
        if prof in ("clean", "harmless"):
            n_bad = 0
        elif prof == "low":
            n_bad = rng.randint(1, 3)
        elif oid == EICAR["sha256"]:
            n_bad = len(names) - 10
        else:
            n_bad = rng.randint(5, min(60, len(names) - 8)) if file else rng.randint(3, 20)
        bad = set(rng.sample(names, n_bad))
        cat_name, family = engines.THREAT_FAMILIES[rng.randrange(len(engines.THREAT_FAMILIES))]
        update = time.strftime("%Y%m%d", time.gmtime(last - DAY))
        results: Dict[str, Any] = {}
        stats = dict.fromkeys(FILE_STATS if file else NET_STATS, 0)
        for name in names:
            roll = rng.random()
            if name in bad:
                cat = "suspicious" if prof == "low" and roll < 0.5 else "malicious"
                if not file:
                    result = (
                        "suspicious"
                        if cat == "suspicious"
                        else rng.choice(("malicious", "phishing", "malware"))
                    )
                elif oid == EICAR["sha256"]:
                    result = rng.choice(engines.EICAR_NAMES)
                else:
                    letter = rng.choice("ABCDEF")
                    result = f"{cat_name.title()}:Win32/{family.title()}.{letter}"
                    # Low-share hits are mostly model/heuristic names; on widely detected
                    # samples (>= 14 engines, so the verdict stays) ML engines still say so.
                    ml = engines.ML_NAMES.get(name)
                    if ml and (prof == "low" or n_bad >= 14):
                        result = ml.format(n=100000 + ord(letter) * 4099 % 900000)
            elif file:
                cat = (
                    "type-unsupported"
                    if roll < 0.05
                    else "timeout"
                    if roll < 0.07
                    else "undetected"  # real file reports have harmless = 0
                )
                result = None
            else:
                cat = "undetected" if roll < 0.12 else "harmless"
                result = "unrated" if cat == "undetected" else "clean"
            stats[cat] += 1
            entry: Dict[str, Any] = {
                "category": cat,
                "engine_name": name,
                "method": "blacklist",
                "result": result,
            }
            if file:
                entry["engine_version"] = f"{rng.randint(1, 25)}.{rng.randint(0, 9)}.0.{name[:1]}"
                entry["engine_update"] = update
            results[name] = entry
        return results, stats

    def _common(
        self, rng: random.Random, kind: str, prof: str, oid: str, override: Optional[int]
    ) -> Dict[str, Any]:
        last = self.last_date(rng, override)
        results, stats = self._analysis(rng, kind, prof, oid, last)
        bad = prof in ("malicious", "low")
        first = last - rng.randint(0, 900) * DAY - rng.randint(0, DAY - 1)
        return {
            "last_analysis_results": results,
            "last_analysis_stats": stats,
            "last_analysis_date": last,
            "last_modification_date": last,
            "first_submission_date": first,
            "last_submission_date": max(first, last - rng.randint(0, 20) * DAY),
            "times_submitted": rng.randint(1, 500),
            "reputation": -rng.randint(5, 90) if bad else rng.randint(0, 20),
            "total_votes": {
                "harmless": rng.randint(0, 5) if bad else rng.randint(0, 40),
                "malicious": rng.randint(1, 30) if bad else 0,
            },
            "tags": [],
        }

    # -- files ----------------------------------------------------------------------------------
    def _real_shapes(self, kind: str, oid: str, prof: str, a: Dict[str, Any], pinned: bool) -> None:
        """Attributes real objects carry that earlier emulator versions did not. Drawn from their
        own generator, so every earlier draw (and every verdict tests rely on) is unchanged."""
        rng = self.rng("shapes", kind, oid)
        bad = prof in ("malicious", "low")
        if kind in ("domain", "ip_address"):
            a.pop("first_submission_date", None)  # real domain/IP objects never have one
            a.pop("last_submission_date", None)
            if not pinned and not bad and rng.random() < 0.15:
                a.pop("last_analysis_date", None)  # older objects: only a modification date
        if rng.random() < 0.2:
            verdict = {"malicious": "MALICIOUS", "low": "SUSPICIOUS"}.get(prof, "UNDETECTED")
            score = (
                rng.randint(80, 100) if prof == "malicious" else rng.randint(30, 60) if bad else 0
            )
            a["gti_assessment"] = {
                "verdict": {"value": f"VERDICT_{verdict}"},
                "threat_score": {"value": score},
                "severity": {"value": "SEVERITY_HIGH" if score >= 80 else "SEVERITY_NONE"},
                "contributing_factors": {"gavs_detections": a["last_analysis_stats"]["malicious"]},
                "description": f"This indicator is {verdict.lower()}.",
            }

    def _file_shapes(self, sha256: str, prof: str, a: Dict[str, Any]) -> None:
        rng = self.rng("file-shapes", sha256)
        mal = a["last_analysis_stats"]["malicious"]
        if prof == "malicious":
            level = "SEVERITY_HIGH" if mal >= 20 else "SEVERITY_MEDIUM"
            why = f"Severity {level[9:]} because it was considered {a.get('type_tag', 'malware')}."
        elif prof == "low":
            level, why = "SEVERITY_LOW", "Severity LOW because of few antivirus detections"
        else:
            level, why = "SEVERITY_NONE", "No severity score data"
        a["threat_severity"] = {
            "version": 5,
            "threat_severity_level": level,
            "threat_severity_data": {"num_av_detections": mal} if mal else {},
            "last_analysis_date": str(a["last_analysis_date"]),
            "level_description": why,
        }
        if "trusted_verdict" in a:  # vendors that ship it, and their verified signature
            org = a["trusted_verdict"]["organization"]
            vendor = {"Microsoft": "Microsoft Corporation", "Google": "Google LLC"}.get(
                org, "Adobe Inc."
            )
            a["known_distributors"] = {
                "distributors": [vendor],
                "products": [f"{org} product"],
                "filenames": a["names"][:1],
                "data_sources": ["National Software Reference Library (NSRL)"],
            }
            a["signature_info"] = {
                "verified": "Signed",
                "signers": f"{vendor}; {vendor} Code Signing PCA",
            }
        elif prof == "clean" and rng.random() < 0.3:
            signer = rng.choice(engines.SIGNERS)
            a["signature_info"] = {"verified": "Signed", "signers": f"{signer}; DigiCert CA"}
        if "sigma_analysis_stats" in a:
            a["sigma_analysis_results"] = [
                {
                    "rule_level": level,
                    "rule_title": title,
                    "rule_source": "Sigma Integrated Rule Set (GitHub)",
                }
                for level, title in engines.SIGMA_RULES
                for _ in range(a["sigma_analysis_stats"].get(level, 0))
            ]
            a["crowdsourced_ids_results"] = [
                {"alert_severity": level, "rule_msg": msg, "rule_category": category,
                 "rule_source": "Proofpoint Emerging Threats Open"}
                for level, msg, category in engines.IDS_RULES
                for _ in range(a["crowdsourced_ids_stats"].get(level, 0))
            ]  # fmt: skip

    def file(
        self,
        sha256: str,
        md5: str,
        sha1: str,
        size: int,
        fixed: Optional[str],
        override: Optional[int],
    ) -> Dict[str, Any]:
        rng = self.rng("file", sha256)
        prof = self.profile("file", sha256, fixed)
        a = self._common(rng, "file", prof, sha256, override)
        tag, description, ext, type_tags = engines.FILE_TYPES[
            rng.randrange(len(engines.FILE_TYPES))
        ]
        name = f"{rng.choice(('invoice', 'setup', 'update', 'report', 'scan'))}.{ext}"
        a.update(
            md5=md5,
            sha1=sha1,
            sha256=sha256,
            size=size,
            type_description=description,
            type_tag=tag,
            type_extension=ext,
            meaningful_name=name,
            names=[name, f"{sha256[:10]}.{ext}"],
            tags=sorted({*type_tags, *rng.sample(engines.BEHAVIOUR_TAGS, rng.randint(0, 3))})
            if prof in ("malicious", "low")
            else sorted(type_tags),
        )
        if prof in ("malicious", "low"):
            self._malware(rng, a)
        elif prof == "clean" and rng.random() < 0.1:
            a["trusted_verdict"] = {
                "verdict": "goodware",
                "organization": rng.choice(("Microsoft", "Google", "Adobe")),
                "filename": name,
            }
        if sha256 == EICAR["sha256"]:
            self._eicar(a)
        elif sha256 == EMPTY["sha256"]:
            a.update(type_description="Empty file", type_tag="empty", meaningful_name="empty")
            a.update(names=["empty", "empty.txt"], tags=["zero-filesize"])
            a["trusted_verdict"] = {
                "verdict": "goodware",
                "organization": "Microsoft",
                "filename": "empty",
            }
        self._file_shapes(sha256, prof, a)
        self._real_shapes("file", sha256, prof, a, bool(override))
        return a

    def _malware(self, rng: random.Random, a: Dict[str, Any]) -> None:
        category, family = engines.THREAT_FAMILIES[rng.randrange(len(engines.THREAT_FAMILIES))]
        variant = rng.choice(("generic", "msil", "win32"))
        a["popular_threat_classification"] = {
            "suggested_threat_label": f"{category}.{family}/{variant}",
            "popular_threat_category": [{"value": category, "count": rng.randint(3, 30)}],
            "popular_threat_name": [
                {"value": family, "count": rng.randint(3, 20)},
                {"value": variant, "count": rng.randint(1, 3)},
            ],
        }
        a["crowdsourced_yara_results"] = [
            {
                "rule_name": f"MAL_{family.title()}_Gen",
                "ruleset_name": "signature-base",
                "ruleset_id": f"{rng.getrandbits(40):010x}",
                "source": "https://github.com/Neo23x0/signature-base",
                "author": "Florian Roth",
                "description": f"Detects {family.title()} samples",
            }
        ]
        sigma = {
            "critical": rng.randint(0, 1),
            "high": rng.randint(0, 3),
            "medium": rng.randint(0, 5),
            "low": rng.randint(0, 5),
        }
        a["sigma_analysis_stats"] = sigma
        a["sigma_analysis_summary"] = {"Sigma Integrated Rule Set (GitHub)": dict(sigma)}
        a["crowdsourced_ids_stats"] = {
            "high": rng.randint(0, 2),
            "medium": rng.randint(0, 3),
            "low": rng.randint(0, 2),
            "info": rng.randint(0, 4),
        }
        box = rng.choice(engines.SANDBOXES)
        a["sandbox_verdicts"] = {
            box: {
                "category": "malicious",
                "sandbox_name": box,
                "malware_classification": ["MALWARE", category.upper()],
                "malware_names": [family.title()],
                "confidence": rng.choice((60, 70, 80, 90, 100)),
            }
        }

    def _eicar(self, a: Dict[str, Any]) -> None:
        a.update(type_description="Text", type_tag="text", type_extension="com")
        a.update(meaningful_name="eicar.com", names=["eicar.com", "eicar.com.txt"])
        a["tags"] = ["text", "attachment"]
        a["popular_threat_classification"] = {
            "suggested_threat_label": "virus.eicar/test",
            "popular_threat_category": [{"value": "virus", "count": 21}],
            "popular_threat_name": [
                {"value": "eicar", "count": 43},
                {"value": "test", "count": 29},
            ],
        }
        a.pop("trusted_verdict", None)

    # -- network objects -----------------------------------------------------------------------
    def url(self, url: str, fixed: Optional[str], override: Optional[int]) -> Dict[str, Any]:
        rng = self.rng("url", url)
        prof = self.profile("url", sha256_hex(url), fixed)
        a = self._common(rng, "url", prof, url, override)
        bad = prof in ("malicious", "low")
        redirected = not bad and url.startswith("http://") and rng.random() < 0.3
        a.update(
            url=url,
            last_final_url="https://" + url[7:] if redirected else url,
            title=rng.choice(("Sign in", "Index of /", "Welcome", "Home", "")),
            last_http_response_code=rng.choice((200, 200, 200, 200, 301, 302, 404)),
            last_http_response_content_length=rng.randint(200, 200_000),
            categories=self._categories(rng, bad, ("Forcepoint ThreatSeeker", "Sophos")),
            threat_names=[rng.choice(("Mal/HTMLGen-A", "phishing", "malware"))] if bad else [],
            tld=url.split("://", 1)[-1].split("/", 1)[0].rsplit(".", 1)[-1].split(":", 1)[0],
        )
        if bad:
            a["tags"] = sorted(rng.sample(("phishing", "malware", "redirector", "ip"), 1))
        if redirected:
            a["redirection_chain"] = [url, a["last_final_url"]]
        self._real_shapes("url", url, prof, a, bool(override))
        return a

    def _categories(self, rng: random.Random, bad: bool, names: Tuple[str, ...]) -> Dict[str, str]:
        pool = engines.CATEGORIES[:4] if bad else engines.CATEGORIES[4:]
        return {name: rng.choice(pool) for name in names}

    def domain(self, domain: str, fixed: Optional[str], override: Optional[int]) -> Dict[str, Any]:
        rng = self.rng("domain", domain)
        prof = self.profile("domain", domain, fixed)
        a = self._common(rng, "domain", prof, domain, override)
        bad = prof in ("malicious", "low")
        created = self.ref - (rng.randint(2, 60) if bad else rng.randint(200, 9000)) * DAY
        registrar = rng.choice(engines.REGISTRARS)
        ranks = {
            "Tranco": {"rank": rng.randint(1, 1_000_000), "timestamp": self.ref - DAY},
            "Majestic": {"rank": rng.randint(1, 1_000_000), "timestamp": self.ref - DAY},
            "Cisco Umbrella": {"rank": rng.randint(1, 1_000_000), "timestamp": self.ref - DAY},
        }
        a.update(
            categories=self._categories(
                rng, bad, ("Forcepoint ThreatSeeker", "alphaMountain.ai", "BitDefender")
            ),
            registrar=registrar,
            creation_date=created,
            expiration_date=created + 365 * DAY * rng.randint(1, 10),
            tld=domain.rsplit(".", 1)[-1],
            last_dns_records=[
                {"type": "A", "value": random_ip(rng), "ttl": 300},
                {"type": "NS", "value": f"ns{rng.randint(1, 4)}.dns-host.net", "ttl": 86400},
                {"type": "MX", "value": f"mail.{domain}", "priority": 10, "ttl": 3600},
            ],
            last_dns_records_date=a["last_analysis_date"],
            popularity_ranks={} if bad else ranks,
            whois=(
                f"Domain Name: {domain.upper()}\nRegistrar: {registrar}\n"
                f"Creation Date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(created))}"
            ),
            whois_date=self.ref - rng.randint(1, 90) * DAY,
        )
        self._real_shapes("domain", domain, prof, a, bool(override))
        return a

    def ip(self, ip: str, fixed: Optional[str], override: Optional[int]) -> Dict[str, Any]:
        rng = self.rng("ip", ip)
        prof = self.profile("ip_address", ip, fixed)
        a = self._common(rng, "ip_address", prof, ip, override)
        asn, owner, country = engines.AS_OWNERS[rng.randrange(len(engines.AS_OWNERS))]
        addr = ipaddress.ip_address(ip)
        prefix = 24 if addr.version == 4 else 48
        a.update(
            asn=asn,
            as_owner=owner,
            country=country,
            continent={"US": "NA", "CN": "AS"}.get(country, "EU"),
            network=str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False)),
            regional_internet_registry={"US": "ARIN", "CN": "APNIC"}.get(country, "RIPE NCC"),
            whois=f"NetRange: {ipaddress.ip_network(f'{ip}/{prefix}', strict=False)}\n"
            f"OrgName: {owner}",
        )
        self._real_shapes("ip_address", ip, prof, a, bool(override))
        return a

    # -- related objects -----------------------------------------------------------------------
    def descriptors(
        self, rng: random.Random, target: str, n: int, owner: str, owner_kind: str
    ) -> List[Dict[str, str]]:
        """`n` (or fewer) related objects of type `target`, all of which the emulator knows.
        Urls carry their address in "url", resolutions their "ip" and "host": the caller
        remembers those and drops them from the descriptor."""
        owner_is_ip = owner_kind == "ip_address"
        out: Dict[str, Dict[str, str]] = {}  # by id: a relationship never lists an object twice
        for i in range(n):
            if target == "domain":
                parent = owner if owner_kind == "domain" and rng.random() < 0.5 else None
                name = f"{rng.choice(('cdn', 'api', 'mail', 'update'))}{rng.randint(1, 999)}"
                tld = rng.choice(("com", "net", "ru", "io"))
                d = {"type": "domain", "id": f"{name}.{parent}" if parent else f"{name}.{tld}"}
            elif target == "ip_address":
                d = {"type": "ip_address", "id": random_ip(rng)}
            elif target == "file":
                d = {"type": "file", "id": f"{rng.getrandbits(256):064x}"}
            elif target == "url":
                url = f"http://{rng.choice(('files', 'dl', 'cdn'))}{rng.randint(1, 99)}.com/{i}"
                d = {"type": "url", "id": sha256_hex(url), "url": url}
            else:  # resolution: VirusTotal's id is the address followed by the host name
                ip = owner if owner_is_ip else random_ip(rng)
                host = f"host{rng.randint(1, 999)}.com" if owner_is_ip else owner
                d = {"type": "resolution", "id": f"{ip}{host}", "ip": ip, "host": host}
            kind = d["type"]
            if kind == "resolution" or not self.is_missing(kind, d["id"]):
                out.setdefault(d["id"], d)
        return list(out.values())
