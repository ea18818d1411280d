#include "backend/maildrop_guard.h"

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/hash/hash.h"

namespace popgate {
namespace {

// Debian's abseil has its own string_view type, not std::string_view: the
// maps' heterogeneous lookup wants that one.
absl::string_view Key(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

}  // namespace

MaildropGuard::Shard& MaildropGuard::ShardOf(std::string_view user) const {
  const size_t h = absl::Hash<absl::string_view>{}(Key(user));
  return shards_[h % shards_.size()];
}

bool MaildropGuard::Claim(std::string_view user, std::string_view backend) {
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.users.find(Key(user));
  if (it == shard.users.end()) {
    shard.users.emplace(std::string(user), Entry{std::string(backend), 1});
    return true;
  }
  // Another backend may have this maildrop open (it was chosen before a
  // drain or a fail-over): opening it here too is what the guard exists
  // to prevent.
  if (it->second.backend != backend) return false;
  ++it->second.sessions;
  return true;
}

void MaildropGuard::Release(std::string_view user, std::string_view backend) {
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.users.find(Key(user));
  // An unpaired release (or one naming another backend) must not free a
  // claim some other session still holds.
  if (it == shard.users.end() || it->second.backend != backend) return;
  if (--it->second.sessions == 0) shard.users.erase(it);
}

std::string MaildropGuard::Current(std::string_view user) const {
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.users.find(Key(user));
  return it == shard.users.end() ? std::string() : it->second.backend;
}

size_t MaildropGuard::users() const {
  size_t n = 0;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    n += shard.users.size();
  }
  return n;
}

MaildropGuard& MaildropGuard::Process() {
  // Function-local: constructed on first use, thread-safe since C++11, and
  // never destroyed before the workers that use it (leaked on purpose: no
  // exit-time destructor racing a worker that is still releasing).
  static MaildropGuard* const guard = new MaildropGuard;
  return *guard;
}

}  // namespace popgate
