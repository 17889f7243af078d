"""AWS Security Hub and Audit Manager: findings, the resources they name, assessment controls and evidence.

Read it top to bottom, starting at ``definition.py``.

Modules, one concept each: ``config`` (operator config: Tether's own AWS identity and the external ID secret),
``slots`` (what is stored), ``external_id`` (the per-integration external ID Tether generates), ``aws`` (boto3
calls off the event loop, AWS errors as typed errors), ``client`` (role assumption or static keys),
``operations`` (Security Hub), ``audit_manager`` (Audit Manager's operations), ``connections`` and
``mappings``.
"""

from definitions.aws_security_hub.definition import definition

__all__ = ["definition"]
