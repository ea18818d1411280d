#include "metrics/registry.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "metrics/exposition.h"

namespace popgate::metrics {
namespace internal {
namespace {

// Joins label values into one cache key. 0xFF never occurs in UTF-8, so
// two different value lists never join to the same key.
std::string JoinKey(std::span<const std::string_view> values, size_t n) {
  std::string key;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) key.push_back('\xff');
    if (i < values.size()) key.append(values[i].data(), values[i].size());
  }
  return key;
}

constexpr std::string_view kOverflow = "_overflow";

}  // namespace

Family::Family(std::string name, std::string help, Type type,
               std::vector<std::string> label_names, size_t cells_per_series,
               size_t max_series, int shards)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      cells_(cells_per_series),
      // One slot is kept for the overflow series.
      max_series_(std::max<size_t>(max_series, 2)),
      shards_(std::max(shards, 1)),
      chunk_count_((max_series_ + kChunkSeries - 1) / kChunkSeries),
      shard_(std::make_unique<Shard[]>(shards_)) {
  for (int s = 0; s < shards_; ++s) {
    shard_[s].chunks =
        std::make_unique<std::atomic<std::atomic<uint64_t>*>[]>(chunk_count_);
    for (size_t c = 0; c < chunk_count_; ++c) shard_[s].chunks[c] = nullptr;
  }
}

Family::~Family() {
  for (int s = 0; s < shards_; ++s) {
    for (size_t c = 0; c < chunk_count_; ++c) delete[] shard_[s].chunks[c];
  }
}

uint32_t Family::FindOrAddLocked(const std::string& key,
                                 std::span<const std::string_view> values) {
  if (auto it = index_.find(key); it != index_.end()) return it->second;
  std::vector<std::string> labels;
  if (labels_.size() + 1 >= max_series_) {
    // Full: everything new shares the overflow series.
    std::vector<std::string_view> over(label_names_.size(), kOverflow);
    const std::string over_key = JoinKey(over, over.size());
    if (auto it = index_.find(over_key); it != index_.end()) return it->second;
    labels.assign(label_names_.size(), std::string(kOverflow));
    const uint32_t id = static_cast<uint32_t>(labels_.size());
    labels_.push_back(std::move(labels));
    index_.emplace(over_key, id);
    series_count_.store(id + 1, std::memory_order_release);
    return id;
  }
  for (size_t i = 0; i < label_names_.size(); ++i) {
    labels.emplace_back(i < values.size() ? values[i] : std::string_view());
  }
  const uint32_t id = static_cast<uint32_t>(labels_.size());
  labels_.push_back(std::move(labels));
  index_.emplace(key, id);
  series_count_.store(id + 1, std::memory_order_release);
  return id;
}

uint32_t Family::SeriesFor(int shard,
                           std::span<const std::string_view> values) {
  shard = ClampShard(shard);
  std::string key = JoinKey(values, label_names_.size());
  if (shard == shards_ - 1) {
    std::lock_guard<std::mutex> lock(mu_);
    return FindOrAddLocked(key, values);
  }
  Shard& sh = shard_[shard];
  if (auto it = sh.cache.find(key); it != sh.cache.end()) return it->second;
  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = FindOrAddLocked(key, values);
  }
  // The cache is bounded by the family's series (overflow keys all map to
  // one series but each is cached: cap the cache too).
  if (sh.cache.size() < 2 * max_series_) sh.cache.emplace(std::move(key), id);
  return id;
}

std::atomic<uint64_t>* Family::Cells(int shard, uint32_t series) {
  shard = ClampShard(shard);
  std::atomic<std::atomic<uint64_t>*>& slot =
      shard_[shard].chunks[series / kChunkSeries];
  std::atomic<uint64_t>* chunk = slot.load(std::memory_order_acquire);
  if (chunk == nullptr) {
    auto* fresh = new std::atomic<uint64_t>[kChunkSeries * cells_];
    for (size_t i = 0; i < kChunkSeries * cells_; ++i) fresh[i] = 0;
    if (slot.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) {
      chunk = fresh;
    } else {
      delete[] fresh;  // another thread of the shared shard won
    }
  }
  return chunk + (series % kChunkSeries) * cells_;
}

std::vector<Family::Totals> Family::Collect(bool sum_as_double) const {
  std::vector<Totals> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out.resize(labels_.size());
    for (size_t i = 0; i < labels_.size(); ++i) out[i].labels = labels_[i];
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].cells.assign(cells_, 0);
    for (int s = 0; s < shards_; ++s) {
      const std::atomic<uint64_t>* chunk =
          shard_[s].chunks[i / kChunkSeries].load(std::memory_order_acquire);
      if (chunk == nullptr) continue;
      const std::atomic<uint64_t>* c = chunk + (i % kChunkSeries) * cells_;
      for (size_t k = 0; k < cells_; ++k) {
        const uint64_t v = c[k].load(std::memory_order_relaxed);
        if (sum_as_double && k + 1 == cells_) {
          out[i].sum += std::bit_cast<double>(v);
        } else {
          out[i].cells[k] += v;
        }
      }
    }
  }
  return out;
}

}  // namespace internal

void CounterFamily::Add(int shard, std::span<const std::string_view> values,
                        uint64_t n) {
  const uint32_t id = f_->SeriesFor(shard, values);
  f_->Cells(shard, id)->fetch_add(n, std::memory_order_relaxed);
}

void HistogramFamily::Observe(int shard,
                              std::span<const std::string_view> values,
                              double v) {
  const uint32_t id = f_->SeriesFor(shard, values);
  std::atomic<uint64_t>* cells = f_->Cells(shard, id);
  // Cells: one per bound, one for +Inf (counts, not cumulative), then the
  // sum as a double's bits.
  const size_t bucket =
      std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  cells[bucket].fetch_add(1, std::memory_order_relaxed);
  std::atomic<uint64_t>& sum = cells[bounds_.size() + 1];
  // One writer per shard in practice: the first exchange succeeds.
  uint64_t old = sum.load(std::memory_order_relaxed);
  while (!sum.compare_exchange_weak(
      old, std::bit_cast<uint64_t>(std::bit_cast<double>(old) + v),
      std::memory_order_relaxed)) {
  }
}

}  // namespace popgate::metrics

namespace popgate::metrics {

struct Registry::Entry {
  std::unique_ptr<internal::Family> family;  // counters and histograms
  std::unique_ptr<CounterFamily> counter;
  std::unique_ptr<HistogramFamily> histogram;
  // Collectors.
  std::string name, help;
  Type type = Type::kGauge;
  std::vector<std::string> label_names;
  std::function<void(std::vector<Sample>&)> collect;
  size_t max_series = 0;
};

Registry::Registry(int shards) : shards_(std::max(shards, 1)) {}
Registry::~Registry() = default;

CounterFamily& Registry::AddCounter(std::string name, std::string help,
                                    std::vector<std::string> label_names,
                                    size_t max_series) {
  auto e = std::make_unique<Entry>();
  e->family = std::make_unique<internal::Family>(
      std::move(name), std::move(help), Type::kCounter, std::move(label_names),
      1, max_series, shards_);
  e->counter.reset(new CounterFamily(e->family.get()));
  CounterFamily& out = *e->counter;
  entries_.push_back(std::move(e));
  return out;
}

HistogramFamily& Registry::AddHistogram(std::string name, std::string help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds,
                                        size_t max_series) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  auto e = std::make_unique<Entry>();
  e->family = std::make_unique<internal::Family>(
      std::move(name), std::move(help), Type::kHistogram,
      std::move(label_names), bounds.size() + 2, max_series, shards_);
  e->histogram.reset(new HistogramFamily(e->family.get(), std::move(bounds)));
  HistogramFamily& out = *e->histogram;
  entries_.push_back(std::move(e));
  return out;
}

void Registry::AddCollector(std::string name, std::string help, Type type,
                            std::vector<std::string> label_names,
                            std::function<void(std::vector<Sample>&)> collect,
                            size_t max_series) {
  auto e = std::make_unique<Entry>();
  e->name = std::move(name);
  e->help = std::move(help);
  e->type = type == Type::kHistogram ? Type::kGauge : type;
  e->label_names = std::move(label_names);
  e->collect = std::move(collect);
  e->max_series = max_series;
  entries_.push_back(std::move(e));
}

std::string Registry::Render(Format format) const {
  std::string out;
  for (const auto& e : entries_) {
    if (e->counter != nullptr) {
      const internal::Family& f = *e->family;
      AppendHeader(out, format, f.name(), Type::kCounter, f.help());
      const std::string sample = f.name() + "_total";
      for (const auto& t : f.Collect(false)) {
        AppendSample(out, sample, f.label_names(), t.labels, "", "",
                     FormatNumber(t.cells[0]));
      }
    } else if (e->histogram != nullptr) {
      const internal::Family& f = *e->family;
      const std::vector<double>& bounds = e->histogram->bounds();
      AppendHeader(out, format, f.name(), Type::kHistogram, f.help());
      const std::string bucket = f.name() + "_bucket";
      for (const auto& t : f.Collect(true)) {
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= bounds.size(); ++b) {
          cumulative += t.cells[b];
          AppendSample(out, bucket, f.label_names(), t.labels, "le",
                       b < bounds.size() ? FormatBound(bounds[b]) : "+Inf",
                       FormatNumber(cumulative));
        }
        AppendSample(out, f.name() + "_sum", f.label_names(), t.labels, "", "",
                     FormatNumber(t.sum));
        AppendSample(out, f.name() + "_count", f.label_names(), t.labels, "",
                     "", FormatNumber(cumulative));
      }
    } else {
      std::vector<Sample> samples;
      e->collect(samples);
      if (samples.size() > e->max_series) samples.resize(e->max_series);
      AppendHeader(out, format, e->name, e->type, e->help);
      const std::string sample =
          e->type == Type::kCounter ? e->name + "_total" : e->name;
      for (const Sample& s : samples) {
        AppendSample(out, sample, e->label_names, s.labels, "", "",
                     FormatNumber(s.value));
      }
    }
  }
  if (format == Format::kOpenMetrics) out += "# EOF\n";
  return out;
}

std::string_view ContentType(Format format) {
  return format == Format::kOpenMetrics
             ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
             : "text/plain; version=0.0.4; charset=utf-8";
}

Format FormatForAccept(std::string_view accept) {
  // Case-insensitive search for the media type; q-values are not weighed
  // (Prometheus sends OpenMetrics first when it wants it).
  std::string lower(accept);
  for (char& c : lower) c = static_cast<char>(std::tolower(c));
  return lower.find("application/openmetrics-text") != std::string::npos
             ? Format::kOpenMetrics
             : Format::kPrometheus;
}

}  // namespace popgate::metrics
