"""What definitions call at run time: the egress guard, the provider helpers (auth, error answers, pagination, rate
limits), JWTs, checks of untrusted text.
"""
