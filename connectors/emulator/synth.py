"""Deterministic synthetic VirusTotal objects in the API's real shapes.

The same id always gives the same object (a random.Random seeded from the id); dates are set
relative to the current UTC day so that a share of reports is older than a month and "rescan
after N days" can be exercised.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import random
import time
from typing import Any, Dict, List, Optional, Tuple

from . import engines

DAY = 86400
NOT_FOUND_SHARE = 0.10
EICAR = {
    "md5": "44d88612fea8a8f36de82e1278abb02f",
    "sha1": "3395856ce81f2b7382dee72602f798b642f14140",
    "sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
    "size": 68,
}
EMPTY = {
    "md5": "d41d8cd98f00b204e9800998ecf8427e",
    "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "size": 0,
}
HARMLESS_DOMAINS = ("example.com", "example.net", "example.org")
MALICIOUS_DOMAIN = "malware.wicar.org"  # the WICAR test-malware site, used for demos
MALICIOUS_URL = "http://malware.wicar.org/data/eicar.com"
MALICIOUS_IP = "203.0.113.66"  # a documentation address the emulator always calls malicious
FIXTURE_VALUES = {
    "malicious": [
        EICAR["md5"],
        EICAR["sha1"],
        EICAR["sha256"],
        MALICIOUS_DOMAIN,
        MALICIOUS_URL,
        MALICIOUS_IP,
    ],
    "harmless": [EMPTY["sha256"], *HARMLESS_DOMAINS, "http://example.com/"],
}


def rng_for(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def today() -> int:
    return int(time.time() // DAY) * DAY


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def decode_url_id(url_id: str) -> Optional[str]:
    try:
        raw = base64.urlsafe_b64decode(url_id + "=" * (-len(url_id) % 4))
        url = raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return url if "://" in url else None


def profile(rng: random.Random, fixed: Optional[str]) -> str:
    """clean | low | malicious | missing"""
    if fixed:
        return fixed
    r = rng.random()
    if r < NOT_FOUND_SHARE:
        return "missing"
    r = rng.random()
    return "clean" if r < 0.55 else "low" if r < 0.70 else "malicious"


def _analysis(rng: random.Random, kind: str, prof: str) -> Tuple[Dict[str, Any], Dict[str, int]]:
    file = kind == "file"
    names = engines.FILE_ENGINES if file else engines.URL_ENGINES
    n_bad = {"clean": 0, "low": rng.randint(1, 2), "harmless": 0}.get(prof)
    if n_bad is None:  # malicious
        n_bad = rng.randint(5, min(60, len(names) - 5))
    bad = set(rng.sample(names, n_bad))
    family = engines.THREAT_FAMILIES[rng.randrange(len(engines.THREAT_FAMILIES))]
    results: Dict[str, Any] = {}
    stats = dict.fromkeys(
        (
            "harmless",
            "malicious",
            "suspicious",
            "undetected",
            "timeout",
            "type-unsupported",
            "confirmed-timeout",
            "failure",
        )
        if file
        else ("harmless", "malicious", "suspicious", "undetected", "timeout"),
        0,
    )
    for name in names:
        roll = rng.random()
        if name in bad:
            cat = "suspicious" if prof == "low" and roll < 0.5 else "malicious"
            result = (
                f"{family[0].title()}:Win32/{family[1].title()}.{rng.choice('ABCDEF')}"
                if file
                else rng.choice(("malicious", "phishing", "malware"))
            )
        elif file:
            cat = (
                "type-unsupported"
                if roll < 0.05
                else "timeout"
                if roll < 0.07
                else ("harmless" if prof == "harmless" and roll < 0.2 else "undetected")
            )
            result = None
        else:
            cat = "undetected" if roll < 0.12 else "harmless"
            result = "unrated" if cat == "undetected" else "clean"
        stats[cat] += 1
        results[name] = {
            "method": "blacklist",
            "engine_name": name,
            "category": cat,
            "result": result,
        }
        if file:
            results[name].update(
                method="blacklist",
                engine_version=f"{rng.randint(1, 9)}.0",
                engine_update=time.strftime("%Y%m%d"),
            )
    return results, stats


def _common(rng: random.Random, kind: str, prof: str, last: int) -> Dict[str, Any]:
    results, stats = _analysis(rng, kind, prof)
    bad = prof in ("malicious", "low")
    first = last - rng.randint(0, 900) * DAY
    return {
        "last_analysis_results": results,
        "last_analysis_stats": stats,
        "last_analysis_date": last,
        "first_submission_date": first,
        "last_submission_date": last,
        "times_submitted": rng.randint(1, 500),
        "reputation": -rng.randint(5, 90) if bad else rng.randint(0, 20),
        "total_votes": {
            "harmless": rng.randint(0, 5) if bad else rng.randint(0, 40),
            "malicious": rng.randint(1, 30) if bad else 0,
        },
        "tags": sorted(
            rng.sample(
                [
                    "peexe",
                    "overlay",
                    "signed",
                    "64bits",
                    "detect-debug-environment",
                    "long-sleeps",
                    "self-delete",
                    "checks-user-input",
                ],
                rng.randint(0, 3),
            )
        )
        if kind == "file"
        else [],
    }


def last_date(rng: random.Random, override: Optional[int]) -> int:
    # ~30% of reports older than 60 days: enough to exercise "rescan after N days".
    if override:
        return override
    return today() - rng.randint(0, 120) * DAY - rng.randint(0, DAY - 1)


def file_object(
    sha256: str, md5: str, sha1: str, size: int, fixed: Optional[str], override: Optional[int]
) -> Dict[str, Any]:
    rng = rng_for("file", sha256)
    prof = profile(rng, fixed)
    a = _common(rng, "file", prof, last_date(rng, override))
    family = engines.THREAT_FAMILIES[rng.randrange(len(engines.THREAT_FAMILIES))]
    ext = rng.choice(("exe", "dll", "docm", "js", "ps1", "elf"))
    a.update(
        md5=md5,
        sha1=sha1,
        sha256=sha256,
        size=size,
        type_description={
            "exe": "Win32 EXE",
            "dll": "Win32 DLL",
            "docm": "MS Word Document",
            "js": "JavaScript",
            "ps1": "Powershell",
            "elf": "ELF",
        }[ext],
        type_tag=ext,
        meaningful_name=f"{rng.choice(('invoice', 'setup', 'update', 'report'))}.{ext}",
        names=[f"sample_{sha256[:8]}.{ext}"],
    )
    if prof in ("malicious", "low"):
        variant = rng.choice(("generic", "msil", "win32"))
        a["popular_threat_classification"] = {
            "suggested_threat_label": f"{family[0]}.{family[1]}/{variant}",
            "popular_threat_category": [{"value": family[0], "count": rng.randint(3, 30)}],
            "popular_threat_name": [{"value": family[1], "count": rng.randint(3, 20)}],
        }
        a["crowdsourced_yara_results"] = [
            {
                "rule_name": f"MAL_{family[1].title()}_Gen",
                "ruleset_name": "signature-base",
                "source": "github",
                "author": "Florian Roth",
            }
        ]
        a["sigma_analysis_stats"] = {
            "critical": 0,
            "high": rng.randint(0, 3),
            "medium": rng.randint(0, 5),
            "low": rng.randint(0, 5),
        }
        a["crowdsourced_ids_stats"] = {
            "high": rng.randint(0, 2),
            "medium": rng.randint(0, 3),
            "low": 0,
            "info": rng.randint(0, 4),
        }
        box = rng.choice(engines.SANDBOXES)
        a["sandbox_verdicts"] = {
            box: {
                "category": "malicious",
                "sandbox_name": box,
                "malware_classification": ["MALWARE", "TROJAN"],
                "malware_names": [family[1].title()],
                "confidence": 80,
            }
        }
    return a


def url_object(url: str, fixed: Optional[str], override: Optional[int]) -> Dict[str, Any]:
    rng = rng_for("url", url)
    prof = profile(rng, fixed)
    a = _common(rng, "url", prof, last_date(rng, override))
    bad = prof in ("malicious", "low")
    a.update(
        url=url,
        last_final_url=url,
        title=rng.choice(("Login", "Index of /", "Welcome", "")),
        last_http_response_code=200,
        categories={
            "Forcepoint ThreatSeeker": rng.choice(
                engines.CATEGORIES[:4] if bad else engines.CATEGORIES[4:]
            )
        },
    )
    return a


def domain_object(domain: str, fixed: Optional[str], override: Optional[int]) -> Dict[str, Any]:
    rng = rng_for("domain", domain)
    prof = profile(rng, fixed)
    a = _common(rng, "domain", prof, last_date(rng, override))
    bad = prof in ("malicious", "low")
    created = today() - rng.randint(2, 9000) * DAY
    a.update(
        categories={
            "Forcepoint ThreatSeeker": rng.choice(
                engines.CATEGORIES[:4] if bad else engines.CATEGORIES[4:]
            ),
            "alphaMountain.ai": rng.choice(engines.CATEGORIES),
        },
        registrar=rng.choice(engines.REGISTRARS),
        creation_date=created,
        tld=domain.rsplit(".", 1)[-1],
        last_dns_records=[{"type": "A", "value": random_ip(rng), "ttl": 300}],
        popularity_ranks={}
        if bad
        else {"Tranco": {"rank": rng.randint(1, 1_000_000), "timestamp": today()}},
        whois=f"Domain Name: {domain.upper()}\nRegistrar: {rng.choice(engines.REGISTRARS)}",
    )
    return a


def ip_object(ip: str, fixed: Optional[str], override: Optional[int]) -> Dict[str, Any]:
    rng = rng_for("ip", ip)
    prof = profile(rng, fixed)
    a = _common(rng, "ip_address", prof, last_date(rng, override))
    asn, owner, country = engines.AS_OWNERS[rng.randrange(len(engines.AS_OWNERS))]
    addr = ipaddress.ip_address(ip)
    prefix = 24 if addr.version == 4 else 48
    a.update(
        asn=asn,
        as_owner=owner,
        country=country,
        continent={"US": "NA", "CN": "AS"}.get(country, "EU"),
        network=str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False)),
        regional_internet_registry="RIPE NCC" if country in ("DE", "FR", "RO", "RU") else "ARIN",
    )
    return a


def is_missing(kind: str, key: str) -> bool:
    return profile(rng_for(kind, key), None) == "missing"


def random_ip(rng: random.Random) -> str:
    while True:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if ip.is_global and not ip.is_multicast:
            return str(ip)


def descriptors(rng: random.Random, target: str, n: int) -> List[Dict[str, str]]:
    out = []
    for i in range(n):
        if target == "domain":
            out.append(
                {
                    "type": "domain",
                    "id": f"{rng.choice(('cdn', 'api', 'mail', 'update'))}"
                    f"{rng.randint(1, 999)}.{rng.choice(('com', 'net', 'ru', 'io'))}",
                }
            )
        elif target == "ip_address":
            out.append({"type": "ip_address", "id": random_ip(rng)})
        elif target == "file":
            out.append({"type": "file", "id": f"{rng.getrandbits(256):064x}"})
        elif target == "url":
            url = f"http://{rng.choice(('files', 'dl', 'cdn'))}{rng.randint(1, 99)}.com/{i}"
            out.append({"type": "url", "id": sha256_hex(url), "context_url": url})
        else:  # resolution
            out.append({"type": "resolution", "id": f"{random_ip(rng)}{i}"})
    return out
