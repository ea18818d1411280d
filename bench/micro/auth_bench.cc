// auth_bench: what a passwd-file login costs popgate. Two very different
// parts: the lookup (on the io_uring worker: must be cheap whatever the file
// size) and the password verification (on the hash pool: as slow as the
// scheme's cost parameters make it, by design).
//
// Hashes are made in-process at the costs `doveadm pw` uses by default
// (SHA-crypt 5000 rounds, BLF-CRYPT cost 5, ARGON2I m=32 MiB t=4,
// ARGON2ID m=64 MiB t=3, p=1), plus BLF-CRYPT cost 10, a common choice
// elsewhere. The passwd-files live in $TMPDIR (or /tmp) while the program
// runs and are removed before it exits.
//
// Run: auth_bench [--benchmark_filter=...]; the verify benchmarks have fixed
// iteration counts so the slow schemes stay bounded (the whole program takes
// about 10-20 s).
#include <argon2.h>
#include <crypt.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "auth/passwd_file.h"
#include "auth/password_scheme.h"
#include "benchmark/benchmark.h"

namespace popgate::auth {
namespace {

constexpr std::string_view kPassword = "correct horse battery staple";

// A crypt(3) hash of kPassword for `prefix` ("$6$", "$2y$", ...) and cost
// `count` (0 = libxcrypt's default), with a random salt from the OS.
std::string CryptHash(const char* prefix, unsigned long count) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn(prefix, count, nullptr, 0, setting, sizeof(setting)) ==
      nullptr) {
    return "";
  }
  crypt_data data{};
  const std::string phrase(kPassword);
  const char* out = crypt_rn(phrase.c_str(), setting, &data, sizeof(data));
  if (out == nullptr || out[0] == '*') return "";
  return out;
}

// An encoded Argon2 hash as doveadm writes it: 16-byte salt, 32-byte digest.
std::string Argon2Hash(argon2_type type, uint32_t t_cost, uint32_t m_kib) {
  std::random_device rd;
  unsigned char salt[16];
  for (unsigned char& b : salt) b = static_cast<unsigned char>(rd());
  constexpr size_t kDigest = 32;
  std::string encoded(
      argon2_encodedlen(t_cost, m_kib, 1, sizeof(salt), kDigest, type), '\0');
  if (argon2_hash(t_cost, m_kib, 1, kPassword.data(), kPassword.size(), salt,
                  sizeof(salt), nullptr, kDigest, encoded.data(),
                  encoded.size(), type, ARGON2_VERSION_13) != ARGON2_OK) {
    return "";
  }
  encoded.resize(encoded.find('\0'));
  return encoded;
}

struct SchemeCase {
  const char* label;  // benchmark name suffix
  Scheme scheme;
  std::string hash;
  int iterations;  // fixed, so the slow schemes cannot run away
};

std::vector<SchemeCase>& Cases() {
  static auto* const cases = new std::vector<SchemeCase>;
  return *cases;
}

void BM_VerifyPassword(benchmark::State& state, size_t index) {
  const SchemeCase& c = Cases()[index];
  if (c.hash.empty() || !ValidateHash(c.scheme, c.hash).ok()) {
    state.SkipWithError("hash generation failed");
    return;
  }
  for (auto _ : state) {
    if (!VerifyPassword(c.scheme, c.hash, kPassword)) {
      state.SkipWithError("password did not verify");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// An unknown user burns a SHA512-CRYPT verification (no enumeration by
// timing); it should cost what BM_VerifyPassword/SHA512-CRYPT does.
void BM_BurnVerificationTime(benchmark::State& state) {
  for (auto _ : state) BurnVerificationTime();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BurnVerificationTime)
    ->Iterations(100)
    ->Unit(benchmark::kMicrosecond);

// Temp passwd-files, one per size; created in main, removed at exit.
struct PasswdFixture {
  int users;
  std::string path;
};

std::vector<PasswdFixture>& Files() {
  static auto* const files = new std::vector<PasswdFixture>;
  return *files;
}

// Every user shares one real SHA512-CRYPT hash: the loader validates each
// hash's shape, and hashing 100k distinct passwords would take minutes
// without changing what is measured here.
bool WritePasswdFile(PasswdFixture& f, const std::string& hash) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(tmpdir != nullptr ? tmpdir : "/tmp",
                                  "/popgate-auth-bench-XXXXXX");
  const int fd = mkstemp(tmpl.data());
  if (fd < 0) return false;
  f.path = tmpl;
  FILE* out = fdopen(fd, "w");
  if (out == nullptr) {
    close(fd);
    return false;
  }
  for (int i = 0; i < f.users; ++i) {
    std::fprintf(out, "user%d@tenant%d.example:{SHA512-CRYPT}%s::::::\n", i,
                 i % 100, hash.c_str());
  }
  return std::fclose(out) == 0;
}

const PasswdFixture* FindFixture(int users) {
  for (const PasswdFixture& f : Files()) {
    if (f.users == users && !f.path.empty()) return &f;
  }
  return nullptr;
}

// Load (read + parse + validate every hash): the cost of a reload.
void BM_PasswdFileLoad(benchmark::State& state) {
  const PasswdFixture* f = FindFixture(static_cast<int>(state.range(0)));
  if (f == nullptr) {
    state.SkipWithError("no passwd-file");
    return;
  }
  for (auto _ : state) {
    absl::StatusOr<PasswdFile> file = PasswdFile::Load(f->path);
    if (!file.ok() || file->size() != static_cast<size_t>(f->users)) {
      state.SkipWithError("load failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_PasswdFileLoad)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

// Find per login: users looked up in random order (so the table's cache
// footprint counts), typed in mixed case (Find lowercases a copy).
// range(1) = 1: users that are not in the file.
void BM_PasswdFileFind(benchmark::State& state) {
  const PasswdFixture* f = FindFixture(static_cast<int>(state.range(0)));
  const bool miss = state.range(1) != 0;
  if (f == nullptr) {
    state.SkipWithError("no passwd-file");
    return;
  }
  absl::StatusOr<PasswdFile> file = PasswdFile::Load(f->path);
  if (!file.ok()) {
    state.SkipWithError("load failed");
    return;
  }
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick(0, f->users - 1);
  std::vector<std::string> names;
  for (int i = 0; i < 4096; ++i) {
    const int u = pick(rng);
    names.push_back(absl::StrCat(miss ? "nobody" : "User", u, "@Tenant",
                                 u % 100, ".example"));
  }
  size_t i = 0;
  for (auto _ : state) {
    const PasswdEntry* e = file->Find(names[i]);
    if ((e == nullptr) != miss) {
      state.SkipWithError("unexpected lookup result");
      break;
    }
    benchmark::DoNotOptimize(e);
    i = (i + 1) % names.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PasswdFileFind)->ArgsProduct({{10'000, 100'000}, {0, 1}});

}  // namespace
}  // namespace popgate::auth

int main(int argc, char** argv) {
  using popgate::auth::Argon2Hash;
  using popgate::auth::CryptHash;
  using popgate::auth::Scheme;

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  auto& cases = popgate::auth::Cases();
  cases.push_back(
      {"PLAIN", Scheme::kPlain, std::string(popgate::auth::kPassword), 0});
  cases.push_back(
      {"SHA256-CRYPT", Scheme::kSha256Crypt, CryptHash("$5$", 0), 100});
  cases.push_back(
      {"SHA512-CRYPT", Scheme::kSha512Crypt, CryptHash("$6$", 0), 100});
  cases.push_back(
      {"BLF-CRYPT_cost5", Scheme::kBlfCrypt, CryptHash("$2y$", 5), 50});
  cases.push_back(
      {"BLF-CRYPT_cost10", Scheme::kBlfCrypt, CryptHash("$2y$", 10), 10});
  cases.push_back({"ARGON2I_m32MiB_t4", Scheme::kArgon2i,
                   Argon2Hash(Argon2_i, 4, 32 * 1024), 5});
  cases.push_back({"ARGON2ID_m64MiB_t3", Scheme::kArgon2id,
                   Argon2Hash(Argon2_id, 3, 64 * 1024), 5});
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string name = absl::StrCat("BM_VerifyPassword/", cases[i].label);
    auto* b = benchmark::RegisterBenchmark(name.c_str(),
                                           popgate::auth::BM_VerifyPassword, i);
    if (cases[i].iterations > 0) {
      b->Iterations(cases[i].iterations)->Unit(benchmark::kMicrosecond);
    }
  }

  auto& files = popgate::auth::Files();
  files = {{10'000, ""}, {100'000, ""}};
  const std::string& shared_hash = cases[2].hash;
  for (auto& f : files) {
    if (!popgate::auth::WritePasswdFile(f, shared_hash)) {
      std::fprintf(stderr, "cannot write a temp passwd-file\n");
    }
  }

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (const auto& f : files) {
    if (!f.path.empty()) std::remove(f.path.c_str());
  }
  return 0;
}
