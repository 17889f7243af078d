"""The budget of one key, in process and in Redis alike: a burst then a wait, fair shares between tenants, pauses
and rates learned from the provider, and one budget for several processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from engine.governor import BucketKey, Governor, LocalGovernor, RateLimit
from engine.governor.headers import Learned
from support.workers import REDIS_URL

#: A burst of ``burst`` and then about nothing: no test depends on how fast the bucket refills.
SLOW = 0.0001


async def grants(governor: Governor, key: BucketKey, limit: RateLimit | None, tenant: str, tries: int) -> int:
    return sum([await governor.acquire(key, limit, tenant) == 0 for _ in range(tries)])


async def test_a_burst_goes_at_once_then_the_caller_is_told_how_long_to_wait(governor: Governor) -> None:
    key, limit = BucketKey("p"), RateLimit(per_second=SLOW, burst=5)
    assert await grants(governor, key, limit, "t1", 5) == 5
    wait = await governor.acquire(key, limit, "t1")
    assert wait > 1000  # one token takes 1/SLOW seconds
    assert governor.acquire_sync(key, limit, "t1") > 1000


async def test_an_undeclared_unlearned_key_is_not_governed(governor: Governor) -> None:
    assert await grants(governor, BucketKey("free"), None, "t1", 50) == 50


async def test_a_tenant_takes_at_most_its_share_while_another_is_asking(governor: Governor) -> None:
    key, limit = BucketKey("p"), RateLimit(per_second=SLOW, burst=8)
    assert await governor.acquire(key, limit, "big") == 0
    assert await governor.acquire(key, limit, "small") == 0  # two tenants active: four tokens each at most
    big = await grants(governor, key, limit, "big", 20)
    small = await grants(governor, key, limit, "small", 20)
    assert big <= 4 and small >= 2  # the big sync asked first and most, and left the small one its turns
    assert 1 + 1 + big + small == 8  # and the two together took the burst, not one call more


def test_shares_stay_fair_over_time_however_often_each_tenant_asks() -> None:
    now = [0.0]
    governor = LocalGovernor(clock=lambda: now[0])
    key, limit = BucketKey("p"), RateLimit(per_second=10, burst=10)
    granted = {"big": 0, "small": 0}
    for tick in range(20_000):  # 200 simulated seconds, 10 ms apart; the big tenant asks five times as often
        now[0] = tick / 100
        for tenant in ("big",) * 5 + ("small",):
            granted[tenant] += governor.acquire_sync(key, limit, tenant) == 0
    assert sum(granted.values()) <= 10 + 10 * 200  # never above the limit
    assert sum(granted.values()) >= 0.95 * 10 * 200  # and the budget is used
    assert min(granted.values()) / max(granted.values()) >= 0.9


async def test_a_learned_pause_stops_every_caller_of_the_key(governor: Governor) -> None:
    key = BucketKey("p")
    await governor.learn(key, Learned(pause=300))
    assert await governor.acquire(key, None, "t1") > 200
    assert await governor.acquire(key, RateLimit(per_second=100), "t2") > 200
    assert await governor.acquire(BucketKey("p", "account:other"), None, "t1") == 0  # other keys are not paused


async def test_a_learned_rate_stricter_than_the_declared_one_wins(governor: Governor) -> None:
    key, limit = BucketKey("p"), RateLimit(per_second=100, burst=100)
    await governor.learn(key, Learned(rate=SLOW))
    # The capacity shrinks with the rate (100 * SLOW/100 → at least one): one call, then a long wait.
    assert await grants(governor, key, limit, "t1", 10) == 1


def test_keys_per_account_and_tenant() -> None:
    account = RateLimit(per_second=1, per="account")
    assert str(BucketKey.for_integration("github_app", account, tenant="t", account="42")) == "github_app:account:42"
    assert str(BucketKey.for_integration("github_app", account, tenant="t", account=None)) == "github_app:app"
    tenant = RateLimit(per_second=1, per="tenant")
    assert str(BucketKey.for_integration("x", tenant, tenant="t9", account="42")) == "x:tenant:t9"
    assert str(BucketKey.for_integration("x", None, tenant="t9", account="42")) == "x:app"


def test_a_declared_limit_must_be_a_positive_finite_rate() -> None:
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            RateLimit(per_second=bad)
    with pytest.raises(ValueError):
        RateLimit(per_second=1, burst=0)


CLAIMER = """
import sys
from engine.governor import BucketKey, RateLimit
from engine.governor.redis import RedisGovernor
governor = RedisGovernor(sys.argv[1], namespace=sys.argv[2])
limit = RateLimit(per_second=float(sys.argv[3]), burst=30)
print(sum(governor.acquire_sync(BucketKey("shared"), limit, sys.argv[4]) == 0 for _ in range(200)))
"""


def test_processes_sharing_redis_share_one_budget(redis_client: redis.Redis, tmp_path: Path) -> None:
    namespace = f"tether_test_{uuid.uuid4().hex[:12]}"
    script = tmp_path / "claim.py"
    script.write_text(CLAIMER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), REDIS_URL, namespace, str(SLOW), "t1"],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        granted = [int(p.communicate(timeout=60)[0]) for p in procs]
    finally:
        keys = list(redis_client.scan_iter(f"{namespace}:*"))
        if keys:
            redis_client.delete(*keys)
    assert sum(granted) == 30  # 600 attempts from three processes, one burst between them
