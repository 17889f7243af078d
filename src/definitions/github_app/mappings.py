"""Mappings: how GitHub objects become rows: repositories → ``asset``, security alerts → ``vulnerability``,
organisation members and teams → the directory models.

A sync and a webhook hand the same shapes to each mapping, so one mapping serves both. Fields GitHub may send as
``null`` or leave out of older payloads are guarded with ``has()`` and conditionals.

An alert payload is ``{"alert": <alert>, "repository": <repository>}`` (a webhook's own top level; the sync builds
it), because a repository's alert numbers start at 1: the alert's ``external_id`` is ``<kind>/<repository ID>/
<number>``, stable across renames and transfers.
"""

from __future__ import annotations

from engine import Mapping

REPOSITORY = Mapping(
    schema="asset",
    variant="repository",
    # Keep every repository except the one in a `repository` webhook with action "deleted": upserting it would
    # make a deleted repository look current. Its row is left for the next full RepositorySync to settle.
    filter='action != "deleted"',
    map="""
    {
      "source_identifier": payload.node_id,
      "name": payload.full_name,
      "asset_type": "repository",
      "description": has(payload.description) ? payload.description : null,
      "url": payload.html_url,
      "owner": payload.owner.login,
      "visibility": has(payload.visibility) ? payload.visibility : (payload.private ? "private" : "public"),
      "archived": has(payload.archived) ? payload.archived : null,
      "source_updated_at": has(payload.updated_at) ? payload.updated_at : null
    }
    """,
)

DEPENDABOT_ALERT = Mapping(
    schema="vulnerability",
    variant="dependabot_alert",
    map="""
    {
      "external_id": "dependabot/" + string(payload.repository.id) + "/" + string(payload.alert.number),
      "cve_id": payload.alert.security_advisory.cve_id,
      "title": payload.alert.security_advisory.summary,
      "description": payload.alert.security_advisory.description,
      "severity": payload.alert.security_advisory.severity,
      "cvss_score": has(payload.alert.security_advisory.cvss) && payload.alert.security_advisory.cvss != null
        ? payload.alert.security_advisory.cvss.score : null,
      "status": payload.alert.state,
      "source": "dependabot",
      "package_name": payload.alert.dependency.package.name,
      "fixed_version": payload.alert.security_vulnerability.first_patched_version != null
        ? payload.alert.security_vulnerability.first_patched_version.identifier : null,
      "resource_identifier": payload.repository.full_name,
      "url": payload.alert.html_url,
      "published_at": payload.alert.security_advisory.published_at,
      "attributes": {
        "ghsa_id": payload.alert.security_advisory.ghsa_id,
        "ecosystem": payload.alert.dependency.package.ecosystem,
        "manifest_path": has(payload.alert.dependency.manifest_path) ? payload.alert.dependency.manifest_path : null,
        "vulnerable_version_range": payload.alert.security_vulnerability.vulnerable_version_range,
        "repository_node_id": payload.repository.node_id
      }
    }
    """,
)

CODE_SCANNING_ALERT = Mapping(
    schema="vulnerability",
    variant="code_scanning_alert",
    # The rule's security severity (critical … low) when the tool gives one, else its plain severity (error …).
    map="""
    {
      "external_id": "code_scanning/" + string(payload.repository.id) + "/" + string(payload.alert.number),
      "title": has(payload.alert.rule.description) && payload.alert.rule.description != ""
        ? payload.alert.rule.description : payload.alert.rule.id,
      "description": has(payload.alert.rule.full_description) ? payload.alert.rule.full_description : null,
      "severity": has(payload.alert.rule.security_severity_level)
        && payload.alert.rule.security_severity_level != null
        ? payload.alert.rule.security_severity_level
        : (has(payload.alert.rule.severity) ? payload.alert.rule.severity : null),
      "status": payload.alert.state,
      "source": "code_scanning",
      "resource_identifier": payload.repository.full_name,
      "url": payload.alert.html_url,
      "published_at": payload.alert.created_at,
      "attributes": {
        "rule_id": payload.alert.rule.id,
        "tool": payload.alert.tool.name,
        "path": has(payload.alert.most_recent_instance) && payload.alert.most_recent_instance != null
          ? payload.alert.most_recent_instance.location.path : null,
        "repository_node_id": payload.repository.node_id
      }
    }
    """,
)

SECRET_SCANNING_ALERT = Mapping(
    schema="vulnerability",
    variant="secret_scanning_alert",
    # The secret itself is never mapped (the sync asks GitHub to hide it and drops it if sent anyway).
    map="""
    {
      "external_id": "secret_scanning/" + string(payload.repository.id) + "/" + string(payload.alert.number),
      "title": "Exposed secret: " + (has(payload.alert.secret_type_display_name)
        && payload.alert.secret_type_display_name != null
        ? payload.alert.secret_type_display_name : payload.alert.secret_type),
      "status": payload.alert.state,
      "source": "secret_scanning",
      "resource_identifier": payload.repository.full_name,
      "url": payload.alert.html_url,
      "published_at": payload.alert.created_at,
      "attributes": {
        "secret_type": payload.alert.secret_type,
        "resolution": has(payload.alert.resolution) ? payload.alert.resolution : null,
        "validity": has(payload.alert.validity) ? payload.alert.validity : null,
        "repository_node_id": payload.repository.node_id
      }
    }
    """,
)

# Directory payloads carry the organisation's login, because one personal access token may see several.

MEMBER = Mapping(
    schema="directory_account",
    variant="member",
    map="""
    {
      "external_id": payload.member.node_id,
      "username": payload.member.login,
      "display_name": has(payload.member.name) ? payload.member.name : payload.member.login,
      "email": has(payload.member.email) ? payload.member.email : null,
      "account_type": payload.member.type == "Bot" ? "bot" : "user",
      "status": "active",
      "is_admin": payload.role == "admin",
      "attributes": {"organization": payload.organization, "role": payload.role, "url": payload.member.html_url}
    }
    """,
)

TEAM = Mapping(
    schema="directory_group",
    variant="team",
    map="""
    {
      "external_id": payload.team.node_id,
      "name": payload.team.name,
      "description": has(payload.team.description) ? payload.team.description : null,
      "group_type": "team",
      "attributes": {
        "organization": payload.organization,
        "slug": payload.team.slug,
        "privacy": has(payload.team.privacy) ? payload.team.privacy : null,
        "parent": has(payload.team.parent) && payload.team.parent != null ? payload.team.parent.slug : null
      }
    }
    """,
)

TEAM_MEMBER = Mapping(
    schema="directory_membership",
    variant="team_member",
    map="""
    {
      "account_external_id": payload.member.node_id,
      "group_external_id": payload.team.node_id,
      "role": payload.role
    }
    """,
)

MAPPINGS = (REPOSITORY, DEPENDABOT_ALERT, CODE_SCANNING_ALERT, SECRET_SCANNING_ALERT, MEMBER, TEAM, TEAM_MEMBER)
