"""Amazon SNS message signatures (django-anymail does not check them).

An SNS message is signed by AWS with the key of a certificate published at
``SigningCertURL``; SignatureVersion 1 signs with SHA1withRSA, version 2 with SHA256withRSA,
over "Key\\nValue\\n" pairs of a fixed list of fields. The certificate is fetched only from
``https://sns.<region>.amazonaws.com/...pem`` and cached in the process.

Tests and the benchmark serve their own certificate: they replace :data:`verifier` with an
:class:`SnsVerifier` whose ``url_allowed``/``fetch`` accept a loopback URL. The production
check (:func:`aws_certificate_url`) has no switch that could weaken it.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Fields signed, in this order, per message type (AWS "Verifying the signatures of Amazon SNS
# messages"); Subject only when present.
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_AWS_HOST = re.compile(r"^sns\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?$")
# A certificate is a few KB; anything larger is not one.
MAX_CERTIFICATE_BYTES = 64 * 1024
CACHE_SIZE = 32


class SnsSignatureError(Exception):
    """The message is not provably from SNS; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def aws_certificate_url(url: str) -> bool:
    """True only for ``https://sns.<region>.amazonaws.com/<path>.pem`` (no port, no login)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and port is None
        and not parts.username
        and not parts.password
        and bool(_AWS_HOST.match(parts.hostname or ""))
        and parts.path.endswith(".pem")
    )


def aws_sns_url(url: str) -> bool:
    """True for an https URL on an SNS endpoint (SubscribeURL of a confirmation)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and port is None
        and not parts.username
        and bool(_AWS_HOST.match(parts.hostname or ""))
    )


def https_get(url: str) -> bytes:
    """GET ``url`` without following redirects (a redirect could leave amazonaws.com)."""
    response = requests.get(url, timeout=10, allow_redirects=False, stream=True)
    try:
        response.raise_for_status()
        body = response.raw.read(MAX_CERTIFICATE_BYTES + 1, decode_content=True)
    finally:
        response.close()
    if len(body) > MAX_CERTIFICATE_BYTES:
        raise ValueError(f"{url}: response larger than {MAX_CERTIFICATE_BYTES} bytes")
    return bytes(body)


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    kind = message.get("Type")
    names: tuple[str, ...]
    if kind == "Notification":
        names = NOTIFICATION_FIELDS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        names = SUBSCRIPTION_FIELDS
    else:
        raise SnsSignatureError(f"unknown SNS message type {kind!r}", status=400)
    parts = []
    for name in names:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise SnsSignatureError(f"SNS message field {name} missing", status=400)
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


class SnsVerifier:
    """Checks SNS signatures; certificates come from URLs ``url_allowed`` accepts, via ``fetch``."""

    def __init__(
        self,
        url_allowed: Callable[[str], bool] = aws_certificate_url,
        fetch: Callable[[str], bytes] = https_get,
        subscribe_url_allowed: Callable[[str], bool] = aws_sns_url,
    ) -> None:
        self.url_allowed = url_allowed
        self.fetch = fetch
        self.subscribe_url_allowed = subscribe_url_allowed
        self._cache: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def verify(self, message: Mapping[str, Any]) -> None:
        """Return when ``message`` carries a valid SNS signature; raise SnsSignatureError."""
        version = message.get("SignatureVersion")
        if version == "1":
            digest: hashes.HashAlgorithm = hashes.SHA1()  # noqa: S303 (SNS v1 is SHA1 by spec)
        elif version == "2":
            digest = hashes.SHA256()
        else:
            raise SnsSignatureError(f"unsupported SNS SignatureVersion {version!r}")
        url = message.get("SigningCertURL")
        if not isinstance(url, str) or not self.url_allowed(url):
            raise SnsSignatureError(f"SNS certificate URL not on an SNS endpoint: {url!r}")
        signature = message.get("Signature")
        try:
            raw_signature = base64.b64decode(str(signature), validate=True)
        except (binascii.Error, ValueError):
            raise SnsSignatureError("SNS signature is not base64") from None
        data = string_to_sign(message)
        key = self.public_key(url)
        try:
            key.verify(raw_signature, data, padding.PKCS1v15(), digest)
        except InvalidSignature:
            raise SnsSignatureError("SNS signature does not verify") from None

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            return cached
        try:
            certificate = x509.load_pem_x509_certificate(self.fetch(url))
        except (requests.RequestException, ValueError, OSError) as exc:
            # Our side or AWS's: the provider should retry later, so not a 4xx.
            raise SnsSignatureError(f"cannot load SNS certificate {url}: {exc}", 503) from exc
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsSignatureError(f"SNS certificate {url} has no RSA key")
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[url] = key
        return key

    def confirm_subscription(self, message: Mapping[str, Any]) -> None:
        """Visit the SubscribeURL of a (verified) SubscriptionConfirmation."""
        url = message.get("SubscribeURL")
        if not isinstance(url, str) or not self.subscribe_url_allowed(url):
            raise SnsSignatureError(f"SubscribeURL not on an SNS endpoint: {url!r}")
        try:
            self.fetch(url)
        except (requests.RequestException, ValueError, OSError) as exc:
            raise SnsSignatureError(f"cannot confirm SNS subscription: {exc}", 503) from exc


# The verifier the webhook uses; replaced only by tests and benchmarks (see module docstring).
verifier = SnsVerifier()
