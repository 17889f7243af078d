"""What definitions call at run time: the egress guard, the provider helpers (auth, error answers, pagination, rate
limits), declarative streams (``engine.kit.streams``: paged, incremental listings run from a declaration), JWTs,
checks of untrusted text.
"""
