#include "auth/auth_cache.h"

#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace popgate::auth {
namespace {

using Hit = AuthCache::Hit;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(AuthCacheTest, MissThenGoodAndBadVerdicts) {
  AuthCache c(100, absl::Minutes(5), absl::Seconds(60));
  EXPECT_EQ(c.Find("alice@x", "secret", kT0), Hit::kMiss);
  c.Insert("alice@x", "secret", true, kT0);
  c.Insert("alice@x", "guess", false, kT0);
  EXPECT_EQ(c.Find("alice@x", "secret", kT0), Hit::kGood);
  EXPECT_EQ(c.Find("alice@x", "guess", kT0), Hit::kBad);
  EXPECT_EQ(c.size(), 2u);
}

TEST(AuthCacheTest, GoodAndBadVerdictsHaveTheirOwnTtl) {
  AuthCache c(100, absl::Minutes(5), absl::Seconds(60));
  c.Insert("u", "good", true, kT0);
  c.Insert("u", "bad", false, kT0);
  EXPECT_EQ(c.Find("u", "bad", kT0 + absl::Seconds(59)), Hit::kBad);
  EXPECT_EQ(c.Find("u", "bad", kT0 + absl::Seconds(60)), Hit::kMiss);
  EXPECT_EQ(c.Find("u", "good", kT0 + absl::Seconds(61)), Hit::kGood);
  EXPECT_EQ(c.Find("u", "good", kT0 + absl::Seconds(299)), Hit::kGood);
  EXPECT_EQ(c.Find("u", "good", kT0 + absl::Seconds(300)), Hit::kMiss);
}

TEST(AuthCacheTest, AnotherPasswordOrUserMisses) {
  AuthCache c(100, absl::Minutes(5), absl::Seconds(60));
  c.Insert("alice@x", "secret", true, kT0);
  EXPECT_EQ(c.Find("alice@x", "Secret", kT0), Hit::kMiss);
  EXPECT_EQ(c.Find("alice@x", "secret ", kT0), Hit::kMiss);
  EXPECT_EQ(c.Find("alice@x", "", kT0), Hit::kMiss);
  EXPECT_EQ(c.Find("bob@x", "secret", kT0), Hit::kMiss);
  EXPECT_EQ(c.Find("alice@y", "secret", kT0), Hit::kMiss);
  // The NUL between them keeps user and password apart.
  c.Insert("ab", "c", true, kT0);
  EXPECT_EQ(c.Find("a", "bc", kT0), Hit::kMiss);
  EXPECT_EQ(c.Find("abc", "", kT0), Hit::kMiss);
}

TEST(AuthCacheTest, UserWithNulIsNeverCached) {
  AuthCache c(100, absl::Minutes(5), absl::Seconds(60));
  const std::string user("a\0b", 3);
  c.Insert(user, "c", true, kT0);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.Find(user, "c", kT0), Hit::kMiss);
  // A password may hold anything: it is last.
  const std::string pw("p\0q", 3);
  c.Insert("a", pw, true, kT0);
  EXPECT_EQ(c.Find("a", pw, kT0), Hit::kGood);
  EXPECT_EQ(c.Find("a", "p", kT0), Hit::kMiss);
}

TEST(AuthCacheTest, InsertReplacesTheVerdictAndItsExpiry) {
  AuthCache c(100, absl::Minutes(5), absl::Seconds(60));
  c.Insert("u", "p", false, kT0);
  c.Insert("u", "p", true, kT0 + absl::Seconds(10));
  EXPECT_EQ(c.Find("u", "p", kT0 + absl::Seconds(100)), Hit::kGood);
  EXPECT_EQ(c.size(), 1u);
  c.Insert("u", "p", true, kT0 + absl::Seconds(200));
  EXPECT_EQ(c.Find("u", "p", kT0 + absl::Seconds(450)), Hit::kGood);
}

TEST(AuthCacheTest, OffWhenSizeOrTtlIsZero) {
  AuthCache off(0, absl::Minutes(5), absl::Seconds(60));
  off.Insert("u", "p", true, kT0);
  EXPECT_EQ(off.Find("u", "p", kT0), Hit::kMiss);
  EXPECT_EQ(off.size(), 0u);

  AuthCache no_negative(100, absl::Minutes(5), absl::ZeroDuration());
  no_negative.Insert("u", "bad", false, kT0);
  no_negative.Insert("u", "good", true, kT0);
  EXPECT_EQ(no_negative.Find("u", "bad", kT0), Hit::kMiss);
  EXPECT_EQ(no_negative.Find("u", "good", kT0), Hit::kGood);
}

TEST(AuthCacheTest, BoundHolds) {
  for (size_t max : {1u, 3u, 16u, 17u, 1000u}) {
    AuthCache c(max, absl::Minutes(5), absl::Seconds(60));
    for (size_t i = 0; i < 10 * max + 200; ++i) {
      c.Insert(absl::StrCat("user", i), "pw", i % 2 == 0, kT0);
      ASSERT_LE(c.size(), max) << "max " << max << " after " << i;
    }
    EXPECT_EQ(c.size(), max) << "a full cache stays full";
  }
}

TEST(AuthCacheTest, TheNewestEntriesSurviveEviction) {
  constexpr size_t kMax = 1600;  // 100 per shard
  AuthCache c(kMax, absl::Minutes(5), absl::Seconds(60));
  for (size_t i = 0; i < 10 * kMax; ++i) {
    c.Insert(absl::StrCat("user", i), "pw", true, kT0);
  }
  // The last 100 inserted: about 6 per shard, far below each one's 100.
  for (size_t i = 10 * kMax - 100; i < 10 * kMax; ++i) {
    EXPECT_EQ(c.Find(absl::StrCat("user", i), "pw", kT0), Hit::kGood) << i;
  }
}

TEST(AuthCacheTest, ExpiredEntriesGoBeforeLiveOnes) {
  // Keys spread over the 16 shards by the random per-process secret, so
  // the counts per shard are binomial: large enough numbers keep every
  // shard far from its bounds either way (the live entries ~600 per
  // shard, 16 standard deviations under its 1000; the new inserts ~500
  // per shard, 11 standard deviations over the 250 that trimming the
  // expired entries takes, two per insert).
  constexpr size_t kMax = 16000;  // 1000 per shard, at most 500 failed
  AuthCache c(kMax, absl::Minutes(5), absl::Seconds(60));
  // Failed logins (expiring at +60 s) fill their half of every shard;
  // about 100 good ones per shard.
  for (int i = 0; i < 16000; ++i) {
    c.Insert(absl::StrCat("bad", i), "pw", false, kT0);
  }
  for (int i = 0; i < 1600; ++i) {
    c.Insert(absl::StrCat("good", i), "pw", true, kT0);
  }
  // Past the negative TTL, about 500 new entries per shard: without the
  // expired ones' room every shard would overflow (~1100 > 1000) and
  // evict live entries.
  const absl::Time later = kT0 + absl::Seconds(61);
  for (int i = 0; i < 8000; ++i) {
    c.Insert(absl::StrCat("new", i), "pw", true, later);
  }
  for (int i = 0; i < 1600; ++i) {
    EXPECT_EQ(c.Find(absl::StrCat("good", i), "pw", later), Hit::kGood) << i;
  }
  for (int i = 0; i < 16000; ++i) {
    EXPECT_EQ(c.Find(absl::StrCat("bad", i), "pw", later), Hit::kMiss) << i;
  }
  for (int i = 0; i < 8000; ++i) {
    EXPECT_EQ(c.Find(absl::StrCat("new", i), "pw", later), Hit::kGood) << i;
  }
  EXPECT_EQ(c.size(), 9600u) << "every expired entry was dropped";
}

TEST(AuthCacheTest, FailuresCannotPushOutGoodLogins) {
  constexpr size_t kMax = 1600;  // 100 per shard, at most 50 failed
  AuthCache c(kMax, absl::Minutes(5), absl::Seconds(60));
  for (int i = 0; i < 400; ++i) {
    c.Insert(absl::StrCat("good", i), "pw", true, kT0);
  }
  // Credential stuffing: a new wrong password every time.
  for (int i = 0; i < 100000; ++i) {
    c.Insert(absl::StrCat("victim", i % 50), absl::StrCat("guess", i), false,
             kT0 + absl::Milliseconds(i));
  }
  const absl::Time end = kT0 + absl::Seconds(100);
  for (int i = 0; i < 400; ++i) {
    EXPECT_EQ(c.Find(absl::StrCat("good", i), "pw", end), Hit::kGood) << i;
  }
  // The latest guesses are cached (the attacker's replays cost no hash).
  EXPECT_EQ(c.Find("victim49", "guess99999", end), Hit::kBad);
  EXPECT_LE(c.size(), 400 + kMax / 2);
  // Without failures, good logins may use the whole cache.
  AuthCache all_good(kMax, absl::Minutes(5), absl::Seconds(60));
  for (size_t i = 0; i < 3 * kMax; ++i) {
    all_good.Insert(absl::StrCat("u", i), "pw", true, kT0);
  }
  EXPECT_EQ(all_good.size(), kMax);
}

TEST(AuthCacheTest, KeysDependOnUserAndPasswordOnly) {
  EXPECT_EQ(AuthCache::KeyOf("u", "p"), AuthCache::KeyOf("u", "p"));
  EXPECT_FALSE(AuthCache::KeyOf("u", "p") == AuthCache::KeyOf("u", "q"));
  EXPECT_FALSE(AuthCache::KeyOf("u", "p") == AuthCache::KeyOf("v", "p"));
  // Two caches of one process share the secret, not their entries.
  AuthCache a(10, absl::Minutes(5), absl::Seconds(60));
  AuthCache b(10, absl::Minutes(5), absl::Seconds(60));
  a.Insert("u", "p", true, kT0);
  EXPECT_EQ(b.Find("u", "p", kT0), Hit::kMiss);
}

TEST(AuthCacheTest, ThreadsFindWhatTheyInserted) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  // Room to spare: each shard holds max/16, and keys fall on shards
  // unevenly.
  AuthCache c(2 * kThreads * kPerThread, absl::Minutes(5), absl::Seconds(60));
  std::atomic<int> misses{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c, &misses, t] {
      for (int i = 0; i < kPerThread; ++i) {
        c.Insert(absl::StrCat("t", t, "u", i), "pw", i % 3 != 0, kT0);
      }
      for (int i = 0; i < kPerThread; ++i) {
        const Hit want = i % 3 != 0 ? Hit::kGood : Hit::kBad;
        if (c.Find(absl::StrCat("t", t, "u", i), "pw", kT0) != want) {
          misses.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(misses.load(), 0);
  EXPECT_EQ(c.size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST(AuthCacheTest, ThreadsKeepTheBound) {
  constexpr size_t kMax = 500;
  AuthCache c(kMax, absl::Minutes(5), absl::Seconds(60));
  std::atomic<bool> over{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, &over, t] {
      for (int i = 0; i < 20000; ++i) {
        const std::string user = absl::StrCat("t", t, "u", i);
        c.Insert(user, "pw", true, kT0 + absl::Milliseconds(i));
        (void)c.Find(user, "pw", kT0 + absl::Milliseconds(i));
        if (i % 1000 == 0 && c.size() > kMax) over = true;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_FALSE(over.load());
  EXPECT_LE(c.size(), kMax);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// The figure docs/auth-cache.md quotes: heap bytes per entry of a full
// cache (glibc's count of bytes in use; sanitizers replace malloc).
TEST(AuthCacheTest, BytesPerEntry) {
  constexpr size_t kEntries = 100000;
  std::vector<std::string> users;
  users.reserve(kEntries);
  for (size_t i = 0; i < kEntries; ++i) {
    users.push_back(absl::StrCat("user", i, "@example.org"));
  }
  // Small blocks plus mmap()ed ones (a shard's table past 128 KiB).
  auto in_use = [] {
    const struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
  };
  const size_t before = in_use();
  {
    AuthCache c(kEntries, absl::Minutes(5), absl::Seconds(60));
    for (const std::string& u : users) c.Insert(u, "pw", true, kT0);
    // Not all: a shard that more keys fall on than max/16 evicted some.
    const size_t held = c.size();
    ASSERT_GT(held, kEntries * 98 / 100);
    const size_t after = in_use();
    const double per_entry =
        static_cast<double>(after - before) / static_cast<double>(held);
    std::printf("auth cache: %.1f heap bytes per entry (%zu entries)\n",
                per_entry, held);
    EXPECT_LT(per_entry, 128.0);
  }
}
#endif

}  // namespace
}  // namespace popgate::auth
