"""``RedisGovernor``: budgets in Redis, shared by every worker process on every host that reaches it.

Each decision is one Lua script run atomically on Redis's own clock (``TIME``), so workers on hosts whose clocks
disagree still share one bucket. The three keys of a budget carry one hash tag (``{definition:scope}``), so they
live on one shard of a Redis Cluster. Keys expire an hour after their last use.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis as redis_sync
import redis.asyncio as redis_async
from redis.commands.core import AsyncScript

from engine.governor.base import LEARNED_RATE_TTL, Governor
from engine.governor.headers import Learned
from engine.governor.limits import BucketKey, RateLimit
from engine.perloop import PerLoop

#: Seconds a budget's keys outlive their last use (longer than a learned rate is trusted).
KEY_TTL = int(LEARNED_RATE_TTL) + 120

ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local declared, declared_capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local tenant, window, ttl = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'paused', 'lrate', 'luntil')
local paused = tonumber(s[3]) or 0
if paused > now then return tostring(paused - now) end
local rate, capacity = nil, 0
if declared > 0 then rate, capacity = declared, declared_capacity end
local learned = tonumber(s[4])
if learned and learned > 0 and (tonumber(s[5]) or 0) > now and (rate == nil or learned < rate) then
  if rate then
    capacity = math.min(capacity, math.max(1, capacity * learned / rate))
  else
    capacity = math.max(1, learned)
  end
  rate = learned
end
if rate == nil then return '0' end
redis.call('ZADD', KEYS[2], now, tenant)
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - window, 'LIMIT', 0, 100)
for _, gone in ipairs(stale) do
  redis.call('ZREM', KEYS[2], gone)
  redis.call('HDEL', KEYS[3], gone .. ':tok', gone .. ':ts')
end
local active = math.max(1, redis.call('ZCARD', KEYS[2]))
local share, share_capacity = rate / active, math.max(1, capacity / active)
local tokens, ts = tonumber(s[1]), tonumber(s[2]) or now
if tokens == nil then tokens = capacity else tokens = math.min(capacity, tokens + (now - ts) * rate) end
local t = redis.call('HMGET', KEYS[3], tenant .. ':tok', tenant .. ':ts')
local own, own_ts = tonumber(t[1]), tonumber(t[2]) or now
if own == nil then own = share_capacity else own = math.min(share_capacity, own + (now - own_ts) * share) end
local wait = 0
if tokens >= 1 and own >= 1 then
  tokens, own = tokens - 1, own - 1
else
  wait = math.max((1 - tokens) / rate, (1 - own) / share, 0.001)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('HSET', KEYS[3], tenant .. ':tok', tostring(own), tenant .. ':ts', tostring(now))
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
return tostring(wait)
"""

LEARN = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
if ARGV[1] ~= '' then
  local until_ = now + tonumber(ARGV[1])
  if until_ > (tonumber(redis.call('HGET', KEYS[1], 'paused')) or 0) then
    redis.call('HSET', KEYS[1], 'paused', tostring(until_))
  end
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'lrate', ARGV[2], 'luntil', tostring(now + tonumber(ARGV[3])))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


@dataclass(frozen=True)
class _Scripts:
    """One event loop's connection and its registered scripts (``EVALSHA``, loaded again after a Redis restart)."""

    client: redis_async.Redis
    acquire: AsyncScript
    learn: AsyncScript


class RedisGovernor(Governor):
    def __init__(self, url: str, *, namespace: str = "tether") -> None:
        self._url = url
        self._namespace = namespace
        # redis.asyncio connections belong to the event loop that opened them (a worker runs one loop per thread).
        # Per loop and dropped when it closes (``engine.perloop``): a client's connections hold their loop.
        self._async: PerLoop[_Scripts] = PerLoop()
        self._sync = redis_sync.Redis.from_url(url)
        self._acquire_sync = self._sync.register_script(ACQUIRE)
        self._learn_sync = self._sync.register_script(LEARN)

    def _keys(self, key: BucketKey) -> list[str]:
        base = f"{self._namespace}:governor:{{{key}}}"
        return [base, base + ":seen", base + ":tenants"]

    def _scripts(self) -> _Scripts:
        def make() -> _Scripts:
            client = redis_async.Redis.from_url(self._url)
            return _Scripts(client, client.register_script(ACQUIRE), client.register_script(LEARN))

        return self._async.setdefault(make)

    def _acquire_args(self, limit: RateLimit | None, tenant: str) -> list[str | float | int]:
        rate = limit.per_second if limit is not None else 0
        capacity = limit.capacity if limit is not None else 0
        return [rate, capacity, tenant, self.active_window, KEY_TTL]

    async def acquire(self, key: BucketKey, limit: RateLimit | None, tenant: str) -> float:
        answer = await self._scripts().acquire(keys=self._keys(key), args=self._acquire_args(limit, tenant))
        return float(answer)

    def acquire_sync(self, key: BucketKey, limit: RateLimit | None, tenant: str) -> float:
        return float(self._acquire_sync(keys=self._keys(key), args=self._acquire_args(limit, tenant)))

    @staticmethod
    def _learn_args(learned: Learned) -> list[str | float | int]:
        pause = "" if learned.pause is None else repr(float(learned.pause))
        rate = "" if learned.rate is None else repr(float(learned.rate))
        return [pause, rate, LEARNED_RATE_TTL, KEY_TTL]

    async def learn(self, key: BucketKey, learned: Learned) -> None:
        if learned.pause is None and learned.rate is None:
            return
        await self._scripts().learn(keys=self._keys(key)[:1], args=self._learn_args(learned))

    def learn_sync(self, key: BucketKey, learned: Learned) -> None:
        if learned.pause is not None or learned.rate is not None:
            self._learn_sync(keys=self._keys(key)[:1], args=self._learn_args(learned))

    def close(self) -> None:
        # Each event loop's async connection goes with its loop; the thread-side one is closed here.
        self._sync.close()
