// Metric families with label sets fixed at registration, stored per writer
// shard (a worker writes only its own shard: relaxed atomic adds, no lock)
// and summed when scraped.
//
// Cardinality is bounded twice: label values come from fixed vocabularies
// or config-defined names (tenants, listeners, backends; never a user
// name), and each family holds at most `max_series` label sets; a label
// set beyond that is counted in one overflow series whose every label value
// is "_overflow", so a bug or a hostile config cannot grow memory.
//
// Finding a series by its label values takes the family's mutex only the
// first time a shard sees those values; after that the shard's own cache
// (touched by that shard's thread only) answers.
#ifndef POPGATE_METRICS_REGISTRY_H_
#define POPGATE_METRICS_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace popgate::metrics {

enum class Type { kCounter, kGauge, kHistogram };

// One sample a collector reports at scrape time.
struct Sample {
  std::vector<std::string> labels;  // values, in the family's label order
  double value = 0;
};

class Registry;

namespace internal {

// The storage shared by counter and histogram families.
class Family {
 public:
  Family(std::string name, std::string help, Type type,
         std::vector<std::string> label_names, size_t cells_per_series,
         size_t max_series, int shards);
  ~Family();
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  // The series index for `values` (as many as label names; extra ones are
  // ignored, missing ones are ""). Shard-local cache first.
  uint32_t SeriesFor(int shard, std::span<const std::string_view> values);
  // The shard's cells of `series` (allocated on first use by the shard).
  std::atomic<uint64_t>* Cells(int shard, uint32_t series);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  Type type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  size_t cells_per_series() const { return cells_; }

  // Scrape: every series' labels and its cells summed over shards.
  // `sum_as_double`: the last cell of each series holds a double's bits
  // (a histogram's sum) and is summed as doubles.
  struct Totals {
    std::vector<std::string> labels;
    std::vector<uint64_t> cells;
    double sum = 0;
  };
  std::vector<Totals> Collect(bool sum_as_double) const;

  int ClampShard(int shard) const {
    return shard < 0 || shard >= shards_ ? shards_ - 1 : shard;
  }

 private:
  static constexpr size_t kChunkSeries = 64;
  struct Shard {
    // Joined label values -> series; this shard's thread only.
    absl::flat_hash_map<std::string, uint32_t> cache;
    // Chunks of kChunkSeries series' cells, allocated by the writer.
    // (The last shard is shared by several threads: it has no cache and
    // its chunks are installed by compare-exchange.)
    std::unique_ptr<std::atomic<std::atomic<uint64_t>*>[]> chunks;
  };
  // Under mu_: the series of `key`, created (or the overflow one) if new.
  uint32_t FindOrAddLocked(const std::string& key,
                           std::span<const std::string_view> values);

  const std::string name_;
  const std::string help_;
  const Type type_;
  const std::vector<std::string> label_names_;
  const size_t cells_;
  const size_t max_series_;
  const int shards_;
  const size_t chunk_count_;
  std::unique_ptr<Shard[]> shard_;

  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, uint32_t> index_;  // guarded by mu_
  std::vector<std::vector<std::string>> labels_;      // guarded by mu_
  std::atomic<uint32_t> series_count_{0};
};

}  // namespace internal

// A counter family: monotonic uint64 per label set.
class CounterFamily {
 public:
  // Adds `n` to the series of `values`. `shard`: the caller's own (a
  // worker's index); out of range means the shared last shard.
  void Add(int shard, std::initializer_list<std::string_view> values,
           uint64_t n = 1) {
    Add(shard, std::span<const std::string_view>(values.begin(), values.size()),
        n);
  }
  void Add(int shard, std::span<const std::string_view> values, uint64_t n);

 private:
  friend class Registry;
  explicit CounterFamily(internal::Family* f) : f_(f) {}
  internal::Family* f_;
};

// A histogram family: cumulative buckets, sum and count per label set.
class HistogramFamily {
 public:
  void Observe(int shard, std::initializer_list<std::string_view> values,
               double v) {
    Observe(shard,
            std::span<const std::string_view>(values.begin(), values.size()),
            v);
  }
  void Observe(int shard, std::span<const std::string_view> values, double v);
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class Registry;
  HistogramFamily(internal::Family* f, std::vector<double> bounds)
      : f_(f), bounds_(std::move(bounds)) {}
  internal::Family* f_;
  std::vector<double> bounds_;  // upper bounds, ascending; +Inf implicit
};

// Output formats of a scrape.
enum class Format {
  kPrometheus,   // text exposition format 0.0.4
  kOpenMetrics,  // OpenMetrics 1.0 text
};

class Registry {
 public:
  // `shards`: writer threads with a shard of their own (workers) plus one
  // shared by every other thread (main, admin, checker); at least 1.
  explicit Registry(int shards);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  int shards() const { return shards_; }
  // The shard for threads without one of their own.
  int shared_shard() const { return shards_ - 1; }

  // Registration happens before the writers start (main thread). `name`
  // is the family name: counters without "_total" (the samples get it).
  CounterFamily& AddCounter(std::string name, std::string help,
                            std::vector<std::string> label_names,
                            size_t max_series = 1024);
  HistogramFamily& AddHistogram(std::string name, std::string help,
                                std::vector<std::string> label_names,
                                std::vector<double> bounds,
                                size_t max_series = 256);
  // Values computed at scrape time (gauges mostly: live sessions, queue
  // depth, backend states). `collect` runs on the scraping thread and must
  // be thread-safe and quick; it reports at most `max_series` samples.
  void AddCollector(std::string name, std::string help, Type type,
                    std::vector<std::string> label_names,
                    std::function<void(std::vector<Sample>&)> collect,
                    size_t max_series = 4096);

  // Any thread: every family, in registration order.
  std::string Render(Format format) const;

 private:
  struct Entry;
  const int shards_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

// What a scrape answers with: the Content-Type of `format`, and the format
// an Accept header asks for (OpenMetrics only when it names
// application/openmetrics-text).
std::string_view ContentType(Format format);
Format FormatForAccept(std::string_view accept);

}  // namespace popgate::metrics

#endif  // POPGATE_METRICS_REGISTRY_H_
