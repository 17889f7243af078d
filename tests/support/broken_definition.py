"""The sample definition with one rule broken (an HTTP provider URL), for the CLI's check command."""

from dataclasses import replace

from engine import OAuth2
from support import sample_definition as s


class PlainHttpOAuth(s.OAuth):
    auth = OAuth2(
        slot=s.OAuthGrant,
        authorize_url="http://sample.example/authorize",
        token_url="https://sample.example/token",
        revoke_url="https://sample.example/revoke",
    )


definition = replace(
    s.definition,
    id="broken_sample",
    connections=tuple(PlainHttpOAuth if c is s.OAuth else c for c in s.definition.connections),
)
