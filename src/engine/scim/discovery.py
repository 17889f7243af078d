"""Discovery documents (RFC 7643 §5-7): ServiceProviderConfig, ResourceTypes and Schemas.

``schemas.json`` holds the core User and Group schema definitions as ``scim2-models`` renders them
(``User.to_schema()``, ``Group.to_schema()``), so there is no runtime dependency on it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from engine.scim.protocol import GROUP_SCHEMA, USER_SCHEMA

MAX_RESULTS = 200
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"


@cache
def schemas() -> list[dict[str, Any]]:
    return json.loads((Path(__file__).parent / "schemas.json").read_text())


def with_meta(doc: dict[str, Any], resource_type: str, location: str) -> dict[str, Any]:
    return {**doc, "meta": {"resourceType": resource_type, "location": location}}


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The endpoint's bearer token, sent as Authorization: Bearer <token>",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }


def resource_types(base: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": [RT_SCHEMA],
            "id": "User",
            "name": "User",
            "description": "User Account",
            "endpoint": "/Users",
            "schema": USER_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"},
        },
        {
            "schemas": [RT_SCHEMA],
            "id": "Group",
            "name": "Group",
            "description": "Group",
            "endpoint": "/Groups",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/Group"},
        },
    ]


def schema_documents(base: str) -> list[dict[str, Any]]:
    return [with_meta(s, "Schema", f"{base}/Schemas/{s['id']}") for s in schemas()]
