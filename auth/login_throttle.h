// Brute-force defence as policy, without storage: given what the store
// knows about the client's address group and the user (failed logins in
// the sliding window, distinct users failing from the address, blocks),
// whether this login may be tried at all and how long its failure must be
// delayed; and, after a failure, which blocks to set.
//
// - Delay: auth_failure_delay doubled for each failure already in the
//   window (the larger of the address's and the user's count), capped.
// - Blocks: an address past address_failures_to_block (any users) or
//   address_users_to_block distinct failing users (password spraying); a
//   user past user_failures_to_block from any addresses (credential
//   stuffing from a botnet). A blocked try is refused without a hash.
// - A good login clears nothing: it must not let an attacker who owns one
//   account reset its address's count, nor a user's own login lift a
//   stuffing block on them.
#ifndef POPGATE_AUTH_LOGIN_THROTTLE_H_
#define POPGATE_AUTH_LOGIN_THROTTLE_H_

#include "absl/time/time.h"

namespace popgate::auth {

struct ThrottleSettings {
  absl::Duration base_delay = absl::Seconds(2);  // [server] auth_failure_delay
  absl::Duration max_delay = absl::Seconds(30);
  absl::Duration window = absl::Minutes(15);
  int address_failures_to_block = 20;  // 0 = never
  int user_failures_to_block = 10;     // 0 = never
  int address_users_to_block = 5;      // 0 = never
  absl::Duration block_time = absl::Minutes(15);
};

// What the store knows about one (address group, user) pair.
struct LoginCounts {
  int address_failures = 0;  // in the window, any user
  int user_failures = 0;     // in the window, any address
  int address_users = 0;     // distinct users failing from the address
  bool address_blocked = false;
  bool user_blocked = false;
  // From RecordFailure only: this very failure set the block (so exactly
  // one caller logs it, however many fail at once).
  bool address_block_new = false;
  bool user_block_new = false;
};

enum class ThrottleVerdict { kAllow, kAddressBlocked, kUserBlocked };

struct ThrottleDecision {
  ThrottleVerdict verdict = ThrottleVerdict::kAllow;
  // When this try fails, its -ERR goes out this long after the PASS.
  absl::Duration failure_delay;
};

// Before a try (counts as they are). failure_delay = min(max_delay,
// base_delay * 2^n), n = max(address_failures, user_failures): the first
// failure waits base_delay; no overflow however large n is.
ThrottleDecision Decide(const LoginCounts& before, const ThrottleSettings& s);

struct FailureEffect {
  bool block_address = false;
  bool block_user = false;
};

// After a failed try (counts including it).
FailureEffect AfterFailure(const LoginCounts& after, const ThrottleSettings& s);

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_LOGIN_THROTTLE_H_
