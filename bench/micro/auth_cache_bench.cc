// auth_cache_bench: what the auth cache (auth/auth_cache.h) costs a login
// on the worker thread: a lookup (hit or miss: one HMAC-SHA256 and one
// table probe under a shard's lock) and an insert into a full cache (an
// eviction each time), against the milliseconds of a password hash it
// saves. The figures are in docs/auth-cache.md.
//
// Run: auth_cache_bench [--benchmark_filter=...] (a few seconds).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "auth/auth_cache.h"
#include "benchmark/benchmark.h"

namespace popgate::auth {
namespace {

constexpr size_t kEntries = 10000;  // the default auth_cache_size
constexpr char kPassword[] = "correct horse battery staple";

std::vector<std::string> Users(size_t n, const char* prefix) {
  std::vector<std::string> users;
  for (size_t i = 0; i < n; ++i) {
    users.push_back(absl::StrCat(prefix, i, "@example.org"));
  }
  return users;
}

// A full cache of the default size: half its users found, half not.
AuthCache& FullCache() {
  static AuthCache* cache = [] {
    auto* c = new AuthCache(kEntries, absl::Minutes(5), absl::Seconds(60));
    const absl::Time now = absl::Now();
    for (const std::string& u : Users(kEntries, "user")) {
      c->Insert(u, kPassword, true, now);
    }
    return c;
  }();
  return *cache;
}

void BM_FindHit(benchmark::State& state) {
  AuthCache& c = FullCache();
  // The newest 1000: the oldest may have gone from a shard that more
  // keys fell on than its share.
  std::vector<std::string> users = Users(kEntries, "user");
  users.erase(users.begin(), users.end() - 1000);
  const absl::Time now = absl::Now();
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    hits += c.Find(users[i++ % users.size()], kPassword, now) !=
            AuthCache::Hit::kMiss;
  }
  state.counters["hit_rate"] = benchmark::Counter(
      static_cast<double>(hits) / static_cast<double>(state.iterations()),
      benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_FindHit)->Threads(1)->Threads(2);

void BM_FindMiss(benchmark::State& state) {
  AuthCache& c = FullCache();
  const std::vector<std::string> users = Users(1000, "other");
  const absl::Time now = absl::Now();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.Find(users[i++ % users.size()], kPassword, now));
  }
}
BENCHMARK(BM_FindMiss);

// Every insert into the full cache evicts one entry.
void BM_InsertEvicting(benchmark::State& state) {
  AuthCache c(kEntries, absl::Minutes(5), absl::Seconds(60));
  const std::vector<std::string> users = Users(4 * kEntries, "user");
  const absl::Time now = absl::Now();
  for (size_t i = 0; i < kEntries; ++i)
    c.Insert(users[i], kPassword, true, now);
  size_t i = kEntries;
  for (auto _ : state) {
    c.Insert(users[i % users.size()], kPassword, i % 4 == 0, now);
    ++i;
  }
}
BENCHMARK(BM_InsertEvicting);

// The key alone (HMAC-SHA256 over user, NUL, password).
void BM_KeyOf(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(AuthCache::KeyOf("user42@example.org", kPassword));
  }
}
BENCHMARK(BM_KeyOf);

}  // namespace
}  // namespace popgate::auth

BENCHMARK_MAIN();
