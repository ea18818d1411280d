#include "backend/backend_health.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/absl_view.h"
#include "base/json_escape.h"
#include "base/log_line.h"

namespace popgate {

namespace {

// Streak counters stop here: a backend dead for years must not wrap them.
constexpr int kStreakCap = 1 << 30;

// Adds one to `counter` without passing kStreakCap; the new value.
int BumpStreak(std::atomic<int>& counter) {
  int v = counter.load(std::memory_order_relaxed);
  while (true) {
    const int next = v < kStreakCap ? v + 1 : v;
    if (counter.compare_exchange_weak(v, next, std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
      return next;
    }
  }
}

}  // namespace

std::string_view HealthStateName(HealthState s) {
  switch (s) {
    case HealthState::kUnknown:
      return "unknown";
    case HealthState::kUp:
      return "up";
    case HealthState::kDown:
      return "down";
  }
  return "unknown";
}

BackendHealth::BackendHealth(std::string tenant, std::string address)
    : tenant_(std::move(tenant)), address_(std::move(address)) {}

void BackendHealth::SetAdminOverride(routing::AdminState state,
                                     routing::AdminState configured) {
  admin_override_.store(
      static_cast<uint8_t>(1 + (static_cast<uint8_t>(state) << 2 |
                                static_cast<uint8_t>(configured))),
      std::memory_order_release);
}

void BackendHealth::ClearAdminOverride() {
  admin_override_.store(0, std::memory_order_release);
}

routing::AdminState BackendHealth::EffectiveState(
    routing::AdminState configured) const {
  const uint8_t v = admin_override_.load(std::memory_order_acquire);
  if (v == 0) return configured;
  const uint8_t packed = v - 1;
  // Set against another configured state: a reload changed the config's
  // word since, and that holds now.
  if ((packed & 3) != static_cast<uint8_t>(configured)) return configured;
  return static_cast<routing::AdminState>(packed >> 2);
}

std::optional<routing::AdminState> BackendHealth::admin_override() const {
  const uint8_t v = admin_override_.load(std::memory_order_acquire);
  if (v == 0) return std::nullopt;
  return static_cast<routing::AdminState>((v - 1) >> 2);
}

void BackendHealth::SetPolicy(const HealthCheckConfig& policy) {
  rise_.store(std::max(policy.rise, 1), std::memory_order_relaxed);
  fall_.store(std::max(policy.fall, 1), std::memory_order_relaxed);
  interval_ns_.store(absl::ToInt64Nanoseconds(policy.interval),
                     std::memory_order_relaxed);
  passive_.store(policy.passive, std::memory_order_relaxed);
  active_.store(policy.active, std::memory_order_release);
}

HealthState BackendHealth::state(absl::Time now) const {
  const auto s =
      static_cast<HealthState>(state_.load(std::memory_order_acquire));
  if (s != HealthState::kDown || active_.load(std::memory_order_acquire)) {
    return s;
  }
  // Without active checks nothing but time ends a down: after one interval
  // the next login may try the backend again. (A backend that checks had
  // downed before they were turned off has retry_after_ns_ 0: usable now,
  // else nothing would ever bring it back.)
  if (absl::ToUnixNanos(now) >=
      retry_after_ns_.load(std::memory_order_acquire)) {
    return HealthState::kUnknown;
  }
  return HealthState::kDown;
}

std::optional<std::string> BackendHealth::Transition(HealthState from,
                                                     HealthState to,
                                                     std::string_view why,
                                                     std::string_view source,
                                                     absl::Time now) {
  uint8_t expected = static_cast<uint8_t>(from);
  // Whoever wins the exchange reports the change; a thread that lost it
  // raced with the same change (or an opposite one) and says nothing.
  if (!state_.compare_exchange_strong(expected, static_cast<uint8_t>(to),
                                      std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
    return std::nullopt;
  }
  return absl::StrCat(
      LogFrame(to == HealthState::kDown ? LogLevel::kWarning : LogLevel::kInfo,
               "backend_health", now),
      ",\"tenant\":\"", JsonEscape(tenant_), "\",\"backend\":\"",
      JsonEscape(address_), "\",\"from\":\"", AbslView(HealthStateName(from)),
      "\",\"to\":\"", AbslView(HealthStateName(to)), "\",\"reason\":\"",
      JsonEscape(why), "\",\"source\":\"", AbslView(source), "\"}\n");
}

std::optional<std::string> BackendHealth::RecordCheck(bool ok,
                                                      std::string_view detail,
                                                      absl::Time now) {
  if (ok) {
    bad_in_a_row_.store(0, std::memory_order_relaxed);
    const int good = BumpStreak(good_in_a_row_);
    const int rise = rise_.load(std::memory_order_relaxed);
    if (good < rise) return std::nullopt;
    const auto cur =
        static_cast<HealthState>(state_.load(std::memory_order_acquire));
    if (cur == HealthState::kUp) return std::nullopt;
    retry_after_ns_.store(0, std::memory_order_relaxed);
    return Transition(cur, HealthState::kUp, absl::StrCat(rise, " good checks"),
                      "check", now);
  }
  good_in_a_row_.store(0, std::memory_order_relaxed);
  const int bad = BumpStreak(bad_in_a_row_);
  const int fall = fall_.load(std::memory_order_relaxed);
  if (bad < fall) return std::nullopt;
  const auto cur =
      static_cast<HealthState>(state_.load(std::memory_order_acquire));
  if (cur == HealthState::kDown) return std::nullopt;
  return Transition(
      cur, HealthState::kDown,
      absl::StrCat(AbslView(detail), " (", fall, " failed checks in a row)"),
      "check", now);
}

std::optional<std::string> BackendHealth::RecordLogin(bool healthy,
                                                      std::string_view detail,
                                                      absl::Time now) {
  if (!passive_.load(std::memory_order_relaxed)) return std::nullopt;
  const bool active = active_.load(std::memory_order_acquire);
  std::optional<std::string> line;
  if (healthy) {
    bad_in_a_row_.store(0, std::memory_order_relaxed);
    // A greeting proves a passively downed backend is back; with active
    // checks only `rise` good checks bring it up (a login that started
    // just before the down mark proves less than a check schedule does).
    if (!active && state_.load(std::memory_order_acquire) ==
                       static_cast<uint8_t>(HealthState::kDown)) {
      line = Transition(HealthState::kDown, HealthState::kUnknown,
                        "a login got a greeting", "login", now);
    }
  } else {
    good_in_a_row_.store(0, std::memory_order_relaxed);
    const int bad = BumpStreak(bad_in_a_row_);
    const int fall = fall_.load(std::memory_order_relaxed);
    if (bad < fall) return std::nullopt;
    if (!active) {
      // Down for one interval from now. Set before the state so that a
      // reader never sees down with a stale retry time; a failure after
      // the interval ran out (the one retry login) re-arms it quietly:
      // the state never stopped being down, so no new line.
      const int64_t retry =
          absl::ToUnixNanos(now) + interval_ns_.load(std::memory_order_relaxed);
      int64_t old = retry_after_ns_.load(std::memory_order_relaxed);
      while (old < retry && !retry_after_ns_.compare_exchange_weak(
                                old, retry, std::memory_order_acq_rel,
                                std::memory_order_relaxed)) {
      }
    }
    const auto cur =
        static_cast<HealthState>(state_.load(std::memory_order_acquire));
    if (cur == HealthState::kDown) return std::nullopt;
    line = Transition(
        cur, HealthState::kDown,
        absl::StrCat(AbslView(detail), " (", fall, " failed logins in a row)"),
        "login", now);
  }
  return line;
}

bool BackendHealth::TryAcquire(uint32_t max) {
  uint32_t v = sessions_.load(std::memory_order_relaxed);
  while (true) {
    if (max > 0 && v >= max) return false;
    if (sessions_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
      return true;
    }
  }
}

void BackendHealth::Release() {
  sessions_.fetch_sub(1, std::memory_order_acq_rel);
}

std::shared_ptr<BackendHealth> HealthRegistry::Get(std::string_view tenant,
                                                   std::string_view address) {
  std::string key = absl::StrCat(AbslView(tenant), absl::string_view("\0", 1),
                                 AbslView(address));
  std::lock_guard<std::mutex> lock(mu_);
  // Drop the entries no snapshot holds any more, once the map has doubled
  // since the last sweep: amortised O(1) per Get, bounded memory.
  if (entries_.size() >= 2 * live_after_sweep_ + 16) {
    std::vector<std::string> dead;
    for (const auto& [k, weak] : entries_) {
      if (weak.expired()) dead.push_back(k);
    }
    for (const std::string& k : dead) entries_.erase(k);
    live_after_sweep_ = entries_.size();
  }
  std::weak_ptr<BackendHealth>& slot = entries_[key];
  if (std::shared_ptr<BackendHealth> live = slot.lock()) return live;
  auto fresh = std::make_shared<BackendHealth>(std::string(tenant),
                                               std::string(address));
  slot = fresh;
  return fresh;
}

size_t HealthRegistry::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace popgate
