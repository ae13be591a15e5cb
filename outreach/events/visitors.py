"""Who fetched a pixel or followed a tracked link: a person, or a machine acting for one.

Plain values in, a :class:`Visit` out; no database. The method is written down in
docs/tracking.md. Most opens of cold mail today are machines:

- Apple Mail Privacy Protection fetches every image of every message through Apple's proxies,
  whether or not anyone reads it;
- Gmail, Yahoo and Outlook.com fetch images through their own proxies;
- security gateways (Mimecast, Proofpoint, Barracuda, Microsoft Safe Links ...) fetch images
  and follow links to scan them, usually within seconds of delivery and often with HEAD.

What is left after these rules is an *estimate* of people, and is reported as one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

HUMAN = "human"
MACHINE = "machine"

# A fetch this soon after the message left us is a gateway scanning it on delivery: no person
# opens a message that fast, and scanners act within seconds of receipt.
MACHINE_SECONDS = 20.0

# The networks mailbox providers fetch images from on their users' behalf. Apple's is its own
# /8 (ARIN: Apple Inc., where Mail Privacy Protection's proxies fetch from); Google's are the
# mail and proxy blocks of _spf.google.com; Microsoft's are Exchange Online's published
# outbound ranges (Microsoft 365 URLs and IP address ranges, ID 10), which Outlook.com's image
# proxy and Safe Links also use.
PROXY_NETWORKS: tuple[tuple[str, str], ...] = (
    ("apple_mpp", "17.0.0.0/8"),
    ("google_image_proxy", "64.233.160.0/19"),
    ("google_image_proxy", "66.102.0.0/20"),
    ("google_image_proxy", "66.249.80.0/20"),
    ("google_image_proxy", "72.14.192.0/18"),
    ("google_image_proxy", "74.125.0.0/16"),
    ("google_image_proxy", "108.177.8.0/21"),
    ("google_image_proxy", "173.194.0.0/16"),
    ("google_image_proxy", "209.85.128.0/17"),
    ("google_image_proxy", "2001:4860:4000::/36"),
    ("google_image_proxy", "2404:6800:4000::/36"),
    ("google_image_proxy", "2607:f8b0:4000::/36"),
    ("google_image_proxy", "2800:3f0:4000::/36"),
    ("google_image_proxy", "2a00:1450:4000::/36"),
    ("google_image_proxy", "2c0f:fb50:4000::/36"),
    ("microsoft_proxy", "40.92.0.0/15"),
    ("microsoft_proxy", "40.107.0.0/16"),
    ("microsoft_proxy", "52.100.0.0/14"),
    ("microsoft_proxy", "104.47.0.0/17"),
    ("microsoft_proxy", "2a01:111:f400::/48"),
    ("microsoft_proxy", "2a01:111:f403::/48"),
)

# User agents, matched case-insensitively anywhere in the header. Proxies first: their agents
# are documented by the providers (Gmail's "GoogleImageProxy", Yahoo's "YahooMailProxy").
PROXY_AGENTS: tuple[tuple[str, str], ...] = (
    ("google_image_proxy", "googleimageproxy"),
    ("yahoo_proxy", "yahoomailproxy"),
    ("microsoft_proxy", "ms-office-proxy"),
)
SCANNER_AGENTS: tuple[str, ...] = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "ironport",
    "cisco",
    "symantec",
    "messagelabs",
    "trend micro",
    "trendmicro",
    "fireeye",
    "forcepoint",
    "sophos",
    "fortinet",
    "zscaler",
    "safelinks",
    "safe links",
    "bitdefender",
    "kaspersky",
    "urlscan",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww-perl",
    "httpclient",
    "bot",
    "crawler",
    "spider",
    "scanner",
    "preview",
)
# Apple's proxies send exactly this and nothing more; a browser or mail client never does.
APPLE_MPP_AGENT = "mozilla/5.0"


@dataclass(frozen=True)
class Visit:
    visitor: str  # HUMAN or MACHINE
    reason: str  # why: "apple_mpp", "scanner_agent", "head", "soon_after_delivery" ...

    @property
    def is_human(self) -> bool:
        return self.visitor == HUMAN


def classify(
    *,
    method: str,
    user_agent: str,
    ip: str,
    seconds_since_sent: float | None,
    is_click: bool = False,
    opened_before: bool = True,
) -> Visit:
    """Machine or (estimated) human, first rule that matches wins:

    1. HEAD: a person's mail client or browser fetches, it does not ask for headers only;
    2. a mailbox provider's image proxy, by its agent or its published network;
    3. Apple's proxy agent (exactly ``Mozilla/5.0``) or no agent at all;
    4. a security gateway or automated client, by its agent;
    5. within :data:`MACHINE_SECONDS` of sending;
    6. a click on a message whose pixel was never fetched (``opened_before`` False; the
       caller passes True when opens are not tracked, since there is nothing to compare);
    7. otherwise a person (estimated).
    """
    agent = (user_agent or "").strip().lower()
    if method.upper() == "HEAD":
        return Visit(MACHINE, "head")
    for reason, needle in PROXY_AGENTS:
        if needle in agent:
            return Visit(MACHINE, reason)
    network = proxy_network(ip)
    if network:
        return Visit(MACHINE, network)
    if not agent:
        return Visit(MACHINE, "no_agent")
    if agent == APPLE_MPP_AGENT:
        return Visit(MACHINE, "apple_mpp")
    if any(needle in agent for needle in SCANNER_AGENTS):
        return Visit(MACHINE, "scanner_agent")
    if seconds_since_sent is not None and seconds_since_sent < MACHINE_SECONDS:
        return Visit(MACHINE, "soon_after_delivery")
    if is_click and not opened_before:
        return Visit(MACHINE, "click_before_open")
    return Visit(HUMAN, "")


def proxy_network(ip: str) -> str:
    """The provider whose proxy network ``ip`` is in, or ""."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ""
    for name, network in _networks():
        if address.version == network.version and address in network:
            return name
    return ""


@lru_cache(maxsize=1)
def _networks() -> tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...]:
    return tuple((name, ipaddress.ip_network(cidr)) for name, cidr in PROXY_NETWORKS)


_TOKENISH = re.compile(r"[^\x20-\x7e]")


def clean_agent(user_agent: str) -> str:
    """The agent as stored: printable ASCII, at most 300 characters."""
    return _TOKENISH.sub("?", user_agent or "")[:300]
