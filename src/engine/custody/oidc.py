"""Tether as an OpenID Connect identity provider: signed federation tokens and their public keys.

Definitions that use workload identity federation (GCP pools, and any other cloud that trusts an OIDC issuer)
present a short-lived ES256 JWT that Tether signs; the customer's cloud trusts Tether's issuer URL
(``settings.public_url``) and checks the signature against the JWKS served here, so no customer secret is
stored.

The signing key is never stored either: an EC P-256 key is derived with HKDF-SHA256 (info
``b"tether/oidc-signing-key/v1"``) from the keyring's active key, which is itself derived from the active master
key, so every process with the same ``TETHER_SECRET_MASTER_KEY`` signs with the same key. The JWKS lists the key
of every master key in the ring (active first), so tokens keep verifying while a master key is rotated. Its
``kid`` is a short RFC 7638 thumbprint of the public key.

Routes (include ``router`` in the app): ``GET /.well-known/openid-configuration`` and ``GET /v1/oidc/jwks``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fastapi import APIRouter, Request

from engine.custody.crypto import KeyRing
from engine.kit.jwt import b64url, b64url_json
from engine.settings import Settings

__all__ = ["JWKS_PATH", "SigningKey", "issue_token", "jwks", "router", "signing_keys"]

JWKS_PATH = "/v1/oidc/jwks"
ALGORITHM = "ES256"
_INFO = b"tether/oidc-signing-key/v1"
#: The order of the P-256 group (FIPS 186-4, D.1.2.3).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class _Keys(Protocol):
    keyring: KeyRing


class IdentityRuntime(Protocol):
    """What issuing needs of the runtime: its settings (``public_url``) and its key source (``keyring``)."""

    settings: Settings
    keys: _Keys


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _coordinate(numbers.x), "y": _coordinate(numbers.y),
                "use": "sig", "alg": ALGORITHM, "kid": self.kid}


def _coordinate(value: int) -> str:
    return b64url(value.to_bytes(32, "big"))


def signing_key_from(material: bytes) -> SigningKey:
    """The P-256 key for 48 bytes of HKDF output (``KeyRing.derive``); deterministic, nothing stored."""
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    # RFC 7638 thumbprint: the required members in lexicographic order, no whitespace.
    canonical = json.dumps({"crv": "P-256", "kty": "EC", "x": _coordinate(numbers.x), "y": _coordinate(numbers.y)},
                           separators=(",", ":"), sort_keys=True)
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()[:16]
    return SigningKey(kid, key)


def signing_keys(keyring: KeyRing) -> list[SigningKey]:
    """One signing key per keyring key, the active one first."""
    materials = keyring.derive(_INFO, 48)
    ordered = [keyring.active_key_id, *(k for k in keyring.key_ids if k != keyring.active_key_id)]
    return [signing_key_from(materials[key_id]) for key_id in ordered]


def issuer(settings: Settings) -> str:
    return settings.public_url.rstrip("/")


def issue_token(runtime: IdentityRuntime, *, subject: str, audience: str, ttl: int = 300) -> str:
    """An ES256 JWT: ``iss`` = Tether's public URL, ``sub``, ``aud``, ``iat``, ``exp`` = ``iat + ttl``."""
    key = signing_keys(runtime.keys.keyring)[0]
    now = int(time.time())
    claims = {"iss": issuer(runtime.settings), "sub": subject, "aud": audience, "iat": now, "exp": now + ttl}
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}".encode()
    r, s = decode_dss_signature(key.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{signing_input.decode()}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def identity_tokens(runtime: IdentityRuntime, tenant_id: str, integration_id: str) -> Callable[[str, int], str]:
    """``ClientContext.identity_token`` for one integration: tokens whose subject is ``tether:{tenant}:{id}``."""
    subject = f"tether:{tenant_id}:{integration_id}"
    return lambda audience, ttl: issue_token(runtime, subject=subject, audience=audience, ttl=ttl)


def jwks(runtime: IdentityRuntime) -> dict[str, Any]:
    """The public keys (RFC 7517 JWK Set) relying parties verify federation tokens with."""
    return {"keys": [key.public_jwk() for key in signing_keys(runtime.keys.keyring)]}


def openid_configuration(runtime: IdentityRuntime) -> dict[str, Any]:
    base = issuer(runtime.settings)
    return {
        "issuer": base,
        "jwks_uri": f"{base}{JWKS_PATH}",
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "iat", "exp"],
    }


router = APIRouter(tags=["oidc"])


@router.get("/.well-known/openid-configuration")
def discovery(request: Request) -> dict[str, Any]:
    return openid_configuration(request.app.state.runtime)


@router.get(JWKS_PATH)
def jwks_route(request: Request) -> dict[str, Any]:
    return jwks(request.app.state.runtime)
