//! The Lua scripts. Every shared time is read inside the script from the Redis
//! server's clock (`TIME`), so hosts' clocks are never compared. Each script
//! touches keys of one hash tag only, so it runs unchanged on a cluster.

/// Prelude: `now` in ms on the server's clock; `int` formats an integer (Lua's
/// default would use exponent notation); `keep` extends a key's expiry, never
/// shortens it (callers may pass different ttls).
macro_rules! lua {
    ($body:expr) => {
        concat!(
            // Redis before 5 refuses writes after TIME unless effects are replicated.
            "if redis.replicate_commands then redis.replicate_commands() end\n",
            "local t = redis.call('TIME')\n",
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n",
            "local function int(x) return string.format('%.0f', x) end\n",
            "local function keep(k, ms) if redis.call('PTTL', k) < tonumber(ms) then redis.call('PEXPIRE', k, ms) end end\n",
            $body
        )
    };
}

/// KEYS: lease, lease sequence, session. ARGV: ttl ms, key check value, owner
/// (random). The lease holds "fence.owner": the fence orders leases, the owner
/// keeps a token unique even if the counter was lost with a Redis restart.
/// Returns {1, fence, stored generation} or {0, lease pttl, stored generation},
/// or {-2, 0, stored generation} when the stored session is sealed under other credentials.
pub const LEASE_ACQUIRE: &str = lua!(
    r#"
local cur = redis.call('HMGET', KEYS[3], 'gen', 'kcv')
local gen = tonumber(cur[1] or '0')
if cur[2] and cur[2] ~= ARGV[2] then return {-2, 0, gen} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('PTTL', KEYS[1]), gen} end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence .. '.' .. ARGV[3], 'NX', 'PX', ARGV[1])
return {1, fence, gen}
"#
);

/// KEYS: lease. ARGV: token, ttl ms. Returns 1 if still held (and extended), else 0.
pub const LEASE_EXTEND: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

/// KEYS: lease. ARGV: token. Returns 1 if it was held and is now released.
pub const LEASE_RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// The fenced publish. KEYS: lease, session, last use. ARGV: token, generation,
/// sealed blob, key check value, record ttl ms, channel, sign-in time (server ms).
/// The last use restarts at the sign-in: uses of the old id are not uses of the new.
/// Returns {1, gen} published (lease released), {-1, gen} lease lost,
/// {-2, gen} other credentials, {-3, gen} generation not higher than the stored one.
pub const PUBLISH: &str = r#"
local cur = redis.call('HMGET', KEYS[2], 'gen', 'kcv')
local gen = tonumber(cur[1] or '0')
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1, gen} end
if cur[2] and cur[2] ~= ARGV[4] then return {-2, gen} end
if tonumber(ARGV[2]) <= gen then return {-3, gen} end
redis.call('HSET', KEYS[2], 'gen', ARGV[2], 'blob', ARGV[3], 'kcv', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[3], ARGV[7], 'PX', ARGV[5])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[6], ARGV[2])
return {1, tonumber(ARGV[2])}
"#;

/// Only-if-larger last use. KEYS: last use, session. ARGV: how long ago the
/// caller's last use was (ms), ttl ms, the generation it used ('0': any).
/// A use of another generation than the stored one is not written.
/// Returns {fleet last use, now}.
pub const LAST_USE_RECORD: &str = lua!(
    r#"
local v = now - tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local same = ARGV[3] == '0' or redis.call('HGET', KEYS[2], 'gen') == ARGV[3]
if same and v > cur then
  redis.call('SET', KEYS[1], int(v), 'PX', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  cur = v
end
return {cur, now}
"#
);

/// KEYS: last use. Returns {fleet last use or -1, now}.
pub const LAST_USE_READ: &str = lua!(
    r#"
return {tonumber(redis.call('GET', KEYS[1]) or '-1'), now}
"#
);

/// Fair semaphore. KEYS: permits (member -> expiry), waiters (member -> place),
/// waiter expiry (member -> expiry), ticket counter. ARGV: member, limit,
/// permit ttl ms, waiter ttl ms, and for an urgent waiter the ms left to its
/// deadline (empty otherwise).
/// Returns {1, 0} granted, or {0, place in the queue (0 = next)}.
/// Expired permits and waiters that stopped asking are dropped first; the
/// free permits go to the lowest places. An in-turn waiter's place is its
/// ticket (1, 2, ...); an urgent waiter's is its deadline on the server's
/// clock less 10^13 ms, below every ticket: urgent waiters go first,
/// earliest deadline first. Both stay exact in a double.
pub const SEM_ACQUIRE: &str = lua!(
    r#"
local me, limit = ARGV[1], tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 256)
if #gone > 0 then
  redis.call('ZREM', KEYS[3], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
if not redis.call('ZSCORE', KEYS[2], me) then
  local place
  if ARGV[5] ~= '' then place = now + tonumber(ARGV[5]) - 1e13 else place = redis.call('INCR', KEYS[4]) end
  redis.call('ZADD', KEYS[2], int(place), me)
end
local free = limit - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], me)
if rank < free then
  redis.call('ZREM', KEYS[2], me)
  redis.call('ZREM', KEYS[3], me)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), me)
  keep(KEYS[1], ARGV[3])
  return {1, 0}
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), me)
for i = 2, 4 do keep(KEYS[i], ARGV[4]) end
return {0, rank - math.max(free, 0)}
"#
);

/// KEYS: waiters, waiter expiry. ARGV: member. Leaves the queue.
pub const SEM_CANCEL: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: permits. ARGV: member. Returns 1 if the permit was still held.
pub const SEM_RELEASE: &str = r#"
return redis.call('ZREM', KEYS[1], ARGV[1])
"#;

/// KEYS: permits. Returns how many unexpired permits are held.
pub const SEM_HELD: &str = lua!(
    r#"
return redis.call('ZCOUNT', KEYS[1], '(' .. int(now), '+inf')
"#
);

/// Sign-in budget per epoch-aligned window. KEYS: budget counter, pause.
/// ARGV: cap for this origin, window ms.
/// Returns {1, count} granted, {0, ms to the window's end} used up,
/// {-1, ms the pause has left} paused.
pub const BUDGET_TAKE: &str = lua!(
    r#"
local p = redis.call('PTTL', KEYS[2])
if p > 0 then return {-1, p} end
local w = tonumber(ARGV[2])
local window_end = (math.floor(now / w) + 1) * w
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, window_end - now} end
n = redis.call('INCR', KEYS[1])
redis.call('PEXPIREAT', KEYS[1], int(window_end))
return {1, n}
"#
);

/// KEYS: budget counter, pause. ARGV: window ms.
/// Returns {sign-ins used in this window, pause ms left or 0, ms to the window's end}.
pub const BUDGET_READ: &str = lua!(
    r#"
local w = tonumber(ARGV[1])
local window_end = (math.floor(now / w) + 1) * w
local p = redis.call('PTTL', KEYS[2])
if p < 0 then p = 0 end
return {tonumber(redis.call('GET', KEYS[1]) or '0'), p, window_end - now}
"#
);

/// The BDC_1144 pause until the next window. KEYS: pause. ARGV: window ms.
/// Returns the ms until the pause ends.
pub const PAUSE: &str = lua!(
    r#"
local w = tonumber(ARGV[1])
local left = (math.floor(now / w) + 1) * w - now
redis.call('SET', KEYS[1], '1', 'PX', int(left))
return left
"#
);
