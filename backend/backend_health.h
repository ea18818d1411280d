// One backend's health as this process sees it: the state every worker
// reads on the login path (one atomic load, no lock), what moves it (active
// checks on the checker's ring, passive marking from real logins on any
// worker), and its live-session count for max_connections.
//
// State machine (HealthCheckConfig's rise/fall):
//   unknown --rise good checks--> up      (unknown is usable: a fresh start
//   unknown --fall failures-----> down     with backends that answer must
//   up      --fall failures-----> down     not refuse everybody)
//   down    --rise good checks--> up
// A failure is a failed active check or, with `passive`, a real login that
// could not connect or got no greeting (BackendConnection::health_failure).
// Without active checks a passively marked backend stays down for one
// `interval`, then is usable again (unknown) and the next login tries it.
// Every change makes exactly one JSON log line (the caller that made the
// change gets it back and logs it).
#ifndef POPGATE_BACKEND_BACKEND_HEALTH_H_
#define POPGATE_BACKEND_BACKEND_HEALTH_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "backend/capa_memo.h"
#include "config/config.h"

namespace popgate {

enum class HealthState : uint8_t { kUnknown, kUp, kDown };
// "unknown", "up", "down": stable, operators' log queries use them.
std::string_view HealthStateName(HealthState s);

class BackendHealth {
 public:
  BackendHealth(std::string tenant, std::string address);
  BackendHealth(const BackendHealth&) = delete;
  BackendHealth& operator=(const BackendHealth&) = delete;

  const std::string& tenant() const { return tenant_; }
  const std::string& address() const { return address_; }

  // The policy of the latest config naming this backend (build, reload).
  // Any thread.
  void SetPolicy(const HealthCheckConfig& policy);

  // Lock-free, any thread: the login path's one question.
  HealthState state(absl::Time now) const;
  bool usable(absl::Time now) const { return state(now) != HealthState::kDown; }

  // An active check's outcome (`detail`: why it failed, or "ok"). Returns
  // the JSON log line when the state changed.
  std::optional<std::string> RecordCheck(bool ok, std::string_view detail,
                                         absl::Time now);
  // A real login's connection attempt: `healthy` = it got a greeting (what
  // happened after that is not the backend's health); false only for
  // health failures. Ignored unless the policy is passive. Returns the log
  // line when the state changed.
  std::optional<std::string> RecordLogin(bool healthy, std::string_view detail,
                                         absl::Time now);

  // The admin API's word on this backend (POST /backends/{addr}/drain|up|
  // down): it replaces the config's `state` until a reload changes that
  // backend's state in the config (then the config's new word holds).
  // Lock-free, any thread. `configured`: the config's state now.
  void SetAdminOverride(routing::AdminState state,
                        routing::AdminState configured);
  void ClearAdminOverride();
  // The state in force: the override when it was set against the same
  // configured state, else `configured`.
  routing::AdminState EffectiveState(routing::AdminState configured) const;
  // The override, if one is set (for the admin API's view).
  std::optional<routing::AdminState> admin_override() const;

  // max_connections: takes a session slot unless `max` (> 0) are taken;
  // max 0 = no limit (still counted). Release once per successful take.
  bool TryAcquire(uint32_t max);
  void Release();
  uint32_t sessions() const {
    return sessions_.load(std::memory_order_relaxed);
  }

  // What its CAPA said at the latest login (LoginToBackend reads and
  // writes it). Kept with the health across reloads; any thread.
  CapaMemo& capa_memo() { return capa_memo_; }

 private:
  // Moves the state by compare-exchange; the log line for the thread that
  // made the change, nullopt for one that lost a race. `source`: "check"
  // or "login".
  std::optional<std::string> Transition(HealthState from, HealthState to,
                                        std::string_view why,
                                        std::string_view source,
                                        absl::Time now);

  const std::string tenant_;
  const std::string address_;
  std::atomic<uint8_t> state_{static_cast<uint8_t>(HealthState::kUnknown)};
  std::atomic<int> good_in_a_row_{0};
  std::atomic<int> bad_in_a_row_{0};
  // Passive-only down: usable again after this (ns since the Unix epoch);
  // 0 = not passively down.
  std::atomic<int64_t> retry_after_ns_{0};
  std::atomic<uint32_t> sessions_{0};
  CapaMemo capa_memo_;
  // The admin override: 0 = none, else 1 + (override << 2 | configured)
  // (AdminState values 0..2 packed in one byte).
  std::atomic<uint8_t> admin_override_{0};
  // Policy, read on every record (atomics: SetPolicy may race).
  std::atomic<int> rise_{2};
  std::atomic<int> fall_{3};
  std::atomic<bool> active_{false};
  std::atomic<bool> passive_{true};
  std::atomic<int64_t> interval_ns_{5'000'000'000};
};

// Keeps one BackendHealth per (tenant, backend address) across reloads, so
// a reload neither forgets that a backend is down nor resets its session
// count. Snapshots hold the shared_ptrs; the registry only weak ones.
class HealthRegistry {
 public:
  // Thread-safe (main thread in practice: snapshot builds).
  std::shared_ptr<BackendHealth> Get(std::string_view tenant,
                                     std::string_view address);
  // Entries held, expired ones not yet swept included (tests).
  size_t size();

 private:
  std::mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<BackendHealth>> entries_;
  size_t live_after_sweep_ = 0;  // entries_.size() after the last sweep
};

}  // namespace popgate

#endif  // POPGATE_BACKEND_BACKEND_HEALTH_H_
