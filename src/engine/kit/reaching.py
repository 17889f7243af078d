"""A call to a provider that could not reach it, or got no answer in time, is ``provider_unavailable``.

Definitions' own hooks (``resolve``, ``verify_install``, a custom ``revoke``) talk to providers with whatever
client they like; what they raise when the network fails is httpx's transport errors or the built-in ones a
deadline or a socket raises. Those are the provider's trouble, not ours: a 502 with a stable code, never a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from engine.custody.oauth import ProviderUnavailable
from engine.errors import TetherError

#: What a provider call raises when the provider could not be reached or did not answer in time.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError, TimeoutError, ConnectionError)

T = TypeVar("T")


async def reaching(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Await a provider call, turning "could not reach it / no answer in time" into ``provider_unavailable``.

    The original exception is dropped (``from None``): httpx's carry the request, which may name a secret.
    """
    try:
        return await call()
    except TetherError:
        raise  # already typed (egress's DeadlineExceeded is also an httpx timeout, and says its bound)
    except (httpx.TimeoutException, TimeoutError):
        raise ProviderUnavailable(f"{what} did not answer in time") from None
    except TRANSPORT_ERRORS:
        raise ProviderUnavailable(f"{what} could not be reached") from None
