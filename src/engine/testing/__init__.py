"""Testing definitions: cassettes (recorded provider exchanges), replay at the egress seam, recording, and the
standard suite every definition passes (``docs/testing-definitions.md``)."""
