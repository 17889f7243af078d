"""RS256 JSON Web Tokens for definitions that authenticate with an RSA key (app JWTs, RFC 7523 assertions).

``load_rsa_private_key`` parses an unencrypted PEM RSA key into a ``cryptography`` key; a bad key raises
``ConfigurationError`` with the caller's message, which never repeats the key. ``sign_rs256`` makes a compact JWS
(RSASSA-PKCS1-v1_5 over SHA-256) from the claims, with ``{"alg": "RS256", "typ": "JWT"}`` plus any extra header
fields (``kid``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from engine.errors import ConfigurationError


def load_rsa_private_key(pem: str, *, error: str, not_rsa_error: str | None = None,
                         unescape_newlines: bool = False) -> rsa.RSAPrivateKey:
    """Parse an unencrypted PEM RSA private key, or raise ``ConfigurationError(error)``.

    ``not_rsa_error`` is the message for a readable key that is not RSA (``error`` when unset).
    ``unescape_newlines`` accepts a PEM whose newlines are escaped as ``\\n`` (to fit one env var).
    """
    if unescape_newlines and "\n" not in pem:
        pem = pem.replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(error) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(not_rsa_error or error)
    return key


def sign_rs256(key: rsa.RSAPrivateKey, claims: Mapping[str, object],
               headers: Mapping[str, object] | None = None) -> str:
    """A compact JWS with RS256 (RSASSA-PKCS1-v1_5 over SHA-256) over ``claims``."""
    header = {"alg": "RS256", "typ": "JWT", **(headers or {})}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64url(signature)}"


def b64url_json(value: Mapping[str, object]) -> str:
    """Compact JSON, base64url-encoded without padding."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
