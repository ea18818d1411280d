// FUZZ_CHECK: a property a fuzz target checks. Unlike assert() it stays on
// in release builds and says which property broke before libFuzzer saves the
// input (abort() is reported as a crash).
#ifndef POPGATE_TESTS_FUZZ_FUZZ_CHECK_H_
#define POPGATE_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                               \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, \
                   __LINE__, #cond);                                   \
      std::abort();                                                    \
    }                                                                  \
  } while (0)

#endif  // POPGATE_TESTS_FUZZ_FUZZ_CHECK_H_
