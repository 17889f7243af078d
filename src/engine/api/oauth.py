"""The browser's side of auth flows: ``/v1/oauth/start`` and the redirect URI ``/v1/oauth/callback``.

``start`` is where the host app sends the user's browser (the ``redirect_url`` of a connect call). It sets an
HttpOnly cookie binding this browser to the flow, then redirects to the provider. The provider redirects back to
``callback``; a callback without the cookie (``missing_flow_state``) or with another flow's cookie
(``session_mismatch``) is refused, which is what stops a login-CSRF. After the flow, the browser goes back to the
flow's return URL with ``tether_result=connected|failed`` (and ``tether_error=<code>``), never with a token.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from engine.errors import TetherError
from engine.integrations.setup import CALLBACK_PATH, Setup

router = APIRouter(tags=["oauth"])
COOKIE = "tether_flow"


@router.get("/v1/oauth/start", response_class=RedirectResponse, status_code=302)
def start(flow: str, session: str, request: Request) -> Response:
    runtime = request.app.state.runtime
    target = runtime.keymaker.launch(flow, session)
    response = RedirectResponse(target, status_code=302)
    response.set_cookie(
        COOKIE,
        session,
        max_age=600,
        httponly=True,
        samesite="lax",
        path="/v1/oauth",
        secure=runtime.settings.public_url.startswith("https://"),
    )
    return response


@router.get(CALLBACK_PATH, status_code=302, responses={302: {"description": "back to the flow's return URL"}})
async def callback(request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items()}
    setup = Setup(request.app.state.runtime)
    try:
        integration, flow = await setup.callback(
            state=params.get("state"), session_id=request.cookies.get(COOKIE), params=params
        )
    except TetherError as exc:
        response: Response = JSONResponse(exc.to_dict(), status_code=exc.status)
        return_url = getattr(exc, "return_url", "")
        if return_url:
            response = _back(return_url, {"tether_result": "failed", "tether_error": exc.code})
        response.delete_cookie(COOKIE, path="/v1/oauth")
        return response
    result = {"tether_result": "connected", "tether_integration": integration.id}
    response = (
        _back(flow.return_url, result)
        if flow.return_url
        else JSONResponse({"result": "connected", "integration_id": integration.id, "status": integration.status})
    )
    response.delete_cookie(COOKIE, path="/v1/oauth")
    return response


def _back(url: str, params: dict[str, str]) -> RedirectResponse:
    return RedirectResponse(f"{url}{'&' if '?' in url else '?'}{urlencode(params)}", status_code=302)
