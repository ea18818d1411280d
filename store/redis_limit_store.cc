#include "store/redis_limit_store.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/json_escape.h"
#include "base/log_line.h"
#include "base/wipe.h"

namespace popgate::store {

namespace {

// One EVAL takes a slot: drop the expired ones, then add ours if the user
// holds fewer than the limit (or ours is there already), and keep the key
// alive for a lease. KEYS[1] = the ZSET; ARGV = now (unix ms), our slot's
// expiry, member, limit, lease (ms).
constexpr std::string_view kAcquireScript =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) "
    "if not redis.call('ZSCORE', KEYS[1], ARGV[3]) and "
    "redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end "
    "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[5]) "
    "return 1";

// Process-wide, so N workers finding Redis down log it once a minute, and
// its return once.
std::atomic<int64_t> g_last_down_log_ns{INT64_MIN};
std::atomic<bool> g_down{false};
constexpr absl::Duration kDownLogEvery = absl::Minutes(1);

// Where a time falls in the two-bucket window, as the local counters
// count (auth/login_counters.cc): whole seconds, W at least 1 s.
struct WindowPos {
  int64_t w;
  int64_t bucket;
  int64_t elapsed;
};

WindowPos PosOf(absl::Time now, const auth::ThrottleSettings& s) {
  WindowPos p;
  p.w = std::max<int64_t>(1, absl::ToInt64Seconds(s.window));
  const int64_t t = absl::ToUnixSeconds(now);
  p.bucket = t / p.w - ((t % p.w) < 0 ? 1 : 0);
  p.elapsed = t - p.bucket * p.w;
  return p;
}

int Weighted(long long cur, long long prev, const WindowPos& p) {
  const uint64_t c = cur > 0 ? static_cast<uint64_t>(cur) : 0;
  const uint64_t pr = prev > 0 ? static_cast<uint64_t>(prev) : 0;
  const uint64_t weighted =
      pr * static_cast<uint64_t>(p.w - p.elapsed) / static_cast<uint64_t>(p.w);
  return static_cast<int>(std::min<uint64_t>(c + weighted, INT32_MAX));
}

int Clamp(long long v) {
  return static_cast<int>(std::clamp<long long>(v, 0, INT32_MAX));
}

std::string Ms(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

// Any error reply among `replies` (a wrong key type, a script error, an
// ACL refusal): the call counts as failed.
absl::Status CheckReplies(const std::vector<RedisReply>& replies,
                          size_t expected) {
  if (replies.size() != expected) {
    return absl::InternalError("redis: wrong number of replies");
  }
  for (const RedisReply& r : replies) {
    if (r.is_error())
      return absl::UnavailableError(absl::StrCat("redis: ", r.str));
  }
  return absl::OkStatus();
}

}  // namespace

std::string RedisUserKey(std::string_view user) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(user.data()), user.size(), digest);
  return absl::BytesToHexString(
      std::string(reinterpret_cast<const char*>(digest), 16));
}

const std::string& RedisInstanceId() {
  static const std::string id = [] {
    uint8_t bytes[8];
    RAND_bytes(bytes, sizeof(bytes));
    return absl::BytesToHexString(
        std::string(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
  }();
  return id;
}

absl::StatusOr<std::string> ReadRedisPassword(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        "redis_password_file ", JsonEscape(path), ": cannot be read"));
  }
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis_password_file ", JsonEscape(path), ": first line is empty"));
  }
  return line;
}

RedisLimitStore::RedisLimitStore(Ring& ring, RedisStoreOptions options,
                                 LogFn log,
                                 std::unique_ptr<LocalLimitStore> fallback)
    : ring_(ring),
      options_(std::move(options)),
      log_(std::move(log)),
      local_(fallback ? std::move(fallback)
                      : std::make_unique<LocalLimitStore>()),
      conn_(ring, options_.connection) {
  Wipe(options_.connection.password);  // the connection has its own copy
}

RedisLimitStore::~RedisLimitStore() = default;

void RedisLimitStore::Start() {
  if (started_) return;
  started_ = true;
  RunRefresher();
}

void RedisLimitStore::Stop() {
  stopping_ = true;
  if (refresher_sleep_ != nullptr) refresher_sleep_->Wake();
  conn_.Close();
}

bool RedisLimitStore::idle() const {
  return !refresher_running_ && conn_.idle();
}

bool RedisLimitStore::Skipping() const { return absl::Now() < skip_until_; }

absl::Status RedisLimitStore::Unavailable() const {
  return absl::UnavailableError(
      last_error_.empty() ? std::string("redis is down") : last_error_);
}

void RedisLimitStore::NoteDown(const absl::Status& status) {
  if (stopping_) return;  // Stop() cancelled it: no outage
  skip_until_ = absl::Now() + options_.skip_after_failure;
  last_error_ = std::string(status.message());
  g_down.store(true, std::memory_order_relaxed);
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t last = g_last_down_log_ns.load(std::memory_order_relaxed);
  if (last != INT64_MIN &&
      now - last < absl::ToInt64Nanoseconds(kDownLogEvery)) {
    return;
  }
  if (!g_last_down_log_ns.compare_exchange_strong(last, now)) return;
  if (log_) {
    log_(
        LogLine(LogLevel::kWarning, "store_down",
                absl::StrCat(",\"store\":\"redis\",\"policy\":\"",
                             options_.fail_closed ? "fail_closed" : "fail_open",
                             "\",\"error\":\"",
                             JsonEscape(std::string(status.message())), "\"")));
  }
}

void RedisLimitStore::ResetDownStateForTests() {
  g_down.store(false);
  g_last_down_log_ns.store(INT64_MIN);
}

void RedisLimitStore::NoteUp() {
  if (!g_down.load(std::memory_order_relaxed)) return;
  if (!g_down.exchange(false)) return;
  // The next outage logs at once again.
  g_last_down_log_ns.store(INT64_MIN, std::memory_order_relaxed);
  if (log_) {
    log_(LogLine(LogLevel::kInfo, "store_up", ",\"store\":\"redis\""));
  }
}

std::string RedisLimitStore::Key(std::string_view kind,
                                 std::string_view rest) const {
  return absl::StrCat(options_.prefix, std::string(kind), ":",
                      std::string(rest));
}

std::string RedisLimitStore::BucketKey(std::string_view kind, int64_t bucket,
                                       std::string_view rest) const {
  // The bucket before the address: an IPv6 group holds ':' itself.
  return absl::StrCat(options_.prefix, std::string(kind), ":", bucket, ":",
                      std::string(rest));
}

std::string RedisLimitStore::Member(std::string_view session_id) const {
  return absl::StrCat(RedisInstanceId(), ":", std::string(session_id));
}

Task<absl::StatusOr<auth::LoginCounts>> RedisLimitStore::Look(
    const LoginKey& key, const auth::ThrottleSettings& s) {
  if (key.address.empty() && key.user.empty()) co_return auth::LoginCounts{};
  if (Skipping()) {
    if (options_.fail_closed) co_return Unavailable();
    co_return co_await local_->Look(key, s);
  }
  const WindowPos p = PosOf(absl::Now(), s);
  const std::string user = key.user.empty() ? "" : RedisUserKey(key.user);
  // MGET fa:cur fa:prev ba fu:cur fu:prev bu (the parts that apply), and
  // PFCOUNT of the address's two user sets: one round trip.
  std::vector<RedisCommand> cmds;
  RedisCommand mget = {"MGET"};
  if (!key.address.empty()) {
    mget.push_back(BucketKey("fa", p.bucket, key.address));
    mget.push_back(BucketKey("fa", p.bucket - 1, key.address));
    mget.push_back(Key("ba", key.address));
  }
  if (!user.empty()) {
    mget.push_back(BucketKey("fu", p.bucket, user));
    mget.push_back(BucketKey("fu", p.bucket - 1, user));
    mget.push_back(Key("bu", user));
  }
  cmds.push_back(std::move(mget));
  if (!key.address.empty()) {
    cmds.push_back({"PFCOUNT", BucketKey("du", p.bucket, key.address),
                    BucketKey("du", p.bucket - 1, key.address)});
  }
  const size_t expected = cmds.size();
  absl::StatusOr<std::vector<RedisReply>> r =
      co_await conn_.Pipeline(std::move(cmds));
  absl::Status st = r.ok() ? CheckReplies(*r, expected) : r.status();
  const size_t mget_n = (key.address.empty() ? 0 : 3) + (user.empty() ? 0 : 3);
  if (st.ok() && (*r)[0].elements.size() != mget_n) {
    st = absl::InternalError("redis: MGET answered the wrong count");
  }
  if (!st.ok()) {
    NoteDown(st);
    if (options_.fail_closed) co_return st;
    co_return co_await local_->Look(key, s);
  }
  NoteUp();
  const std::vector<RedisReply>& v = (*r)[0].elements;
  auth::LoginCounts c;
  size_t i = 0;
  if (!key.address.empty()) {
    c.address_failures = Weighted(v[0].AsInteger(), v[1].AsInteger(), p);
    c.address_blocked = v[2].type != RedisReply::Type::kNil;
    c.address_users = Clamp((*r)[1].integer);
    i = 3;
  }
  if (!user.empty()) {
    c.user_failures = Weighted(v[i].AsInteger(), v[i + 1].AsInteger(), p);
    c.user_blocked = v[i + 2].type != RedisReply::Type::kNil;
  }
  co_return c;
}

Task<absl::StatusOr<auth::LoginCounts>> RedisLimitStore::RecordFailure(
    const LoginKey& key, const auth::ThrottleSettings& s) {
  // This instance's share, counted locally as well: a fail_open answer
  // during an outage then does not start from zero.
  absl::StatusOr<auth::LoginCounts> shadow =
      co_await local_->RecordFailure(key, s);
  if (key.address.empty() && key.user.empty()) co_return shadow;
  if (Skipping()) {
    if (options_.fail_closed) co_return Unavailable();
    co_return shadow;
  }
  const WindowPos p = PosOf(absl::Now(), s);
  const std::string ttl = Ms(absl::Seconds(2 * p.w));
  const std::string user = key.user.empty() ? "" : RedisUserKey(key.user);
  std::vector<RedisCommand> cmds;
  RedisCommand mget = {"MGET"};
  if (!key.address.empty()) {
    const std::string fa = BucketKey("fa", p.bucket, key.address);
    cmds.push_back({"INCR", fa});
    cmds.push_back({"PEXPIRE", fa, ttl});
    mget.push_back(BucketKey("fa", p.bucket - 1, key.address));
    mget.push_back(Key("ba", key.address));
    const std::string du = BucketKey("du", p.bucket, key.address);
    if (!user.empty()) {
      cmds.push_back({"PFADD", du, user});
      cmds.push_back({"PEXPIRE", du, ttl});
    }
    cmds.push_back({"PFCOUNT", du, BucketKey("du", p.bucket - 1, key.address)});
  }
  if (!user.empty()) {
    const std::string fu = BucketKey("fu", p.bucket, user);
    cmds.push_back({"INCR", fu});
    cmds.push_back({"PEXPIRE", fu, ttl});
    mget.push_back(BucketKey("fu", p.bucket - 1, user));
    mget.push_back(Key("bu", user));
  }
  cmds.push_back(std::move(mget));
  const size_t expected = cmds.size();
  absl::StatusOr<std::vector<RedisReply>> r =
      co_await conn_.Pipeline(std::move(cmds));
  absl::Status st = r.ok() ? CheckReplies(*r, expected) : r.status();
  if (st.ok() && r->back().elements.size() != (key.address.empty() ? 0u : 2u) +
                                                  (user.empty() ? 0u : 2u)) {
    st = absl::InternalError("redis: MGET answered the wrong count");
  }
  if (!st.ok()) {
    NoteDown(st);
    if (options_.fail_closed) co_return st;
    co_return shadow;
  }
  NoteUp();
  const std::vector<RedisReply>& v = r->back().elements;
  auth::LoginCounts c;
  size_t at = 0;  // into the replies
  size_t mi = 0;  // into the MGET's
  if (!key.address.empty()) {
    const long long cur = (*r)[at].integer;
    at += user.empty() ? 3 : 5;  // INCR, PEXPIRE, [PFADD, PEXPIRE,] PFCOUNT
    c.address_failures = Weighted(cur, v[0].AsInteger(), p);
    c.address_blocked = v[1].type != RedisReply::Type::kNil;
    c.address_users = Clamp((*r)[at - 1].integer);
    mi = 2;
  }
  if (!user.empty()) {
    c.user_failures = Weighted((*r)[at].integer, v[mi].AsInteger(), p);
    c.user_blocked = v[mi + 1].type != RedisReply::Type::kNil;
  }

  // Blocks: set only where none runs (NX), so exactly one caller on any
  // instance sees it new and logs it.
  const auth::FailureEffect effect = auth::AfterFailure(c, s);
  const bool block_address =
      effect.block_address && !key.address.empty() && !c.address_blocked;
  const bool block_user = effect.block_user && !user.empty() && !c.user_blocked;
  if (s.block_time <= absl::ZeroDuration() || (!block_address && !block_user)) {
    co_return c;
  }
  const std::string block_ms = Ms(s.block_time);
  std::vector<RedisCommand> sets;
  if (block_address) {
    sets.push_back({"SET", Key("ba", key.address), "1", "PX", block_ms, "NX"});
  }
  if (block_user) {
    sets.push_back({"SET", Key("bu", user), "1", "PX", block_ms, "NX"});
  }
  const size_t n_sets = sets.size();
  absl::StatusOr<std::vector<RedisReply>> b =
      co_await conn_.Pipeline(std::move(sets));
  absl::Status bst = b.ok() ? CheckReplies(*b, n_sets) : b.status();
  if (!bst.ok()) {
    NoteDown(bst);
    if (options_.fail_closed) co_return bst;
    co_return shadow;
  }
  size_t k = 0;
  if (block_address) {
    c.address_blocked = true;
    c.address_block_new = (*b)[k++].type == RedisReply::Type::kStatus;
  }
  if (block_user) {
    c.user_blocked = true;
    c.user_block_new = (*b)[k++].type == RedisReply::Type::kStatus;
  }
  co_return c;
}

Task<absl::StatusOr<bool>> RedisLimitStore::AcquireUserSession(
    std::string_view user, std::string_view session_id, int limit) {
  std::string id(session_id);
  std::string name(user);
  absl::Status st;
  if (Skipping()) {
    st = Unavailable();
  } else {
    const std::string zkey = Key("s", RedisUserKey(name));
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    const int64_t lease_ms = absl::ToInt64Milliseconds(options_.session_lease);
    RedisCommand eval = {"EVAL",
                         std::string(kAcquireScript),
                         "1",
                         zkey,
                         absl::StrCat(now_ms),
                         absl::StrCat(now_ms + lease_ms),
                         Member(id),
                         absl::StrCat(limit > 0 ? limit : INT32_MAX),
                         absl::StrCat(lease_ms)};
    absl::StatusOr<RedisReply> r = co_await conn_.Command(std::move(eval));
    if (r.ok() && r->is_error()) {
      st = absl::UnavailableError(absl::StrCat("redis: ", r->str));
    } else if (!r.ok()) {
      st = r.status();
    }
    if (st.ok()) {
      NoteUp();
      if (r->integer != 1) co_return false;
      slots_[id] = Slot{zkey, name};
      co_return true;
    }
    NoteDown(st);
  }
  if (options_.fail_closed) co_return st;
  absl::StatusOr<bool> local =
      co_await local_->AcquireUserSession(name, id, limit);
  if (local.ok() && *local) slots_[id] = Slot{"", name};
  co_return local;
}

void RedisLimitStore::ReleaseUserSession(std::string_view user,
                                         std::string_view session_id) {
  auto it = slots_.find(std::string(session_id));
  if (it == slots_.end()) return;
  if (it->second.key.empty()) {
    local_->ReleaseUserSession(user, session_id);
  } else {
    // Fire and forget: when Redis cannot take it, the slot expires within
    // a lease (its refresh stops now).
    conn_.Send({"ZREM", it->second.key, Member(session_id)});
  }
  slots_.erase(it);
}

Task<void> RedisLimitStore::RefreshSlots() {
  if (Skipping()) co_return;
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  const std::string expiry =
      absl::StrCat(now_ms + absl::ToInt64Milliseconds(options_.session_lease));
  const std::string lease = Ms(options_.session_lease);
  // Copied first: sessions may end (and erase theirs) while a batch waits.
  std::vector<std::pair<std::string, std::string>> todo;  // key, member
  todo.reserve(slots_.size());
  for (const auto& [id, slot] : slots_) {
    if (!slot.key.empty()) todo.emplace_back(slot.key, Member(id));
  }
  const size_t batch = std::max<size_t>(1, options_.refresh_batch);
  for (size_t i = 0; i < todo.size() && !stopping_; i += batch) {
    std::vector<RedisCommand> cmds;
    const size_t end = std::min(todo.size(), i + batch);
    for (size_t j = i; j < end; ++j) {
      cmds.push_back({"ZADD", todo[j].first, "XX", expiry, todo[j].second});
      cmds.push_back({"PEXPIRE", todo[j].first, lease});
    }
    absl::StatusOr<std::vector<RedisReply>> r =
        co_await conn_.Pipeline(std::move(cmds));
    if (!r.ok()) {
      NoteDown(r.status());
      co_return;
    }
  }
}

Detached RedisLimitStore::RunRefresher() {
  refresher_running_ = true;
  const absl::Duration every =
      std::max(options_.session_lease / 3, absl::Milliseconds(10));
  while (!stopping_) {
    SleepOp sleep = Sleep(ring_, every);
    refresher_sleep_ = &sleep;
    co_await sleep;
    refresher_sleep_ = nullptr;
    if (stopping_) break;
    co_await RefreshSlots();
  }
  refresher_running_ = false;
}

}  // namespace popgate::store
