"""Operations as runs: the one execution path, the run store every run write goes through, heartbeats, and the
scheduler.
"""
