"""How a client authenticates: an API key or a principal signer, exactly one."""

from __future__ import annotations

import httpx

from tether_client.principal import ApiKey, PrincipalSigner


def auth_of(api_key: str | None, principal: PrincipalSigner | None) -> httpx.Auth:
    if (api_key is None) == (principal is None):
        raise ValueError("give either api_key (tk_…) or principal (a PrincipalSigner), not both and not neither")
    return ApiKey(api_key) if api_key is not None else principal  # type: ignore[return-value]


def is_provider_401(result: object) -> bool:
    """``with_integration_access``'s contract: a returned ``httpx.Response`` with 401 means the token was refused."""
    return isinstance(result, httpx.Response) and result.status_code == 401
