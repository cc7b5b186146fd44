"""Indicators the emulator always answers the same way, whatever the seed: safe test values
(EICAR, the empty file, example.com/.net/.org) and one always-malicious URL, domain and IP."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

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
MALICIOUS_DOMAIN = "malware.wicar.org"  # the WICAR test-malware site; other tests use it
MALICIOUS_URL = "http://malware.wicar.org/data/eicar.com"
MALICIOUS_IP = "203.0.113.66"  # a documentation address the emulator always calls malicious
FIXTURE_VALUES: Dict[str, List[str]] = {
    "malicious": [
        EICAR["md5"],
        EICAR["sha1"],
        EICAR["sha256"],
        MALICIOUS_DOMAIN,
        MALICIOUS_URL,
        MALICIOUS_IP,
    ],
    "harmless": [
        EMPTY["md5"],
        EMPTY["sha1"],
        EMPTY["sha256"],
        *HARMLESS_DOMAINS,
        "http://example.com/",
    ],
}


def file_fixture(h: str) -> Optional[Tuple[str, Dict[str, object]]]:
    """(profile, hashes) when `h` (any of md5/sha1/sha256, lower case) is a fixture file."""
    for hashes, prof in ((EICAR, "malicious"), (EMPTY, "harmless")):
        if h in (hashes["md5"], hashes["sha1"], hashes["sha256"]):
            return prof, hashes
    return None


def file_profile(sha256: str) -> Optional[str]:
    found = file_fixture(sha256)
    return found[0] if found else None


def url_host(url: str) -> str:
    rest = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url.lower())
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def url_profile(url: str) -> Optional[str]:
    host = url_host(url)
    if url == MALICIOUS_URL or host == MALICIOUS_DOMAIN:
        return "malicious"
    return "harmless" if host in HARMLESS_DOMAINS else None


def domain_profile(domain: str) -> Optional[str]:
    if domain == MALICIOUS_DOMAIN:
        return "malicious"
    return "harmless" if domain in HARMLESS_DOMAINS else None


def ip_profile(ip: str) -> Optional[str]:
    return "malicious" if ip == MALICIOUS_IP else None
