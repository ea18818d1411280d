#include "server/admin_routes.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "backend/backend_health.h"
#include "base/json_escape.h"
#include "base/log_line.h"

namespace popgate {
namespace {

constexpr size_t kMaxToken = 4096;
// GET /sessions lists at most this many (then "truncated": true).
constexpr size_t kMaxListedSessions = 10000;
// POST /reload requests waiting for one reload at once.
constexpr size_t kMaxReloadWaiters = 16;

std::string Quoted(std::string_view s) {
  return absl::StrCat("\"", JsonEscape(s), "\"");
}

std::string_view AdminStateName(routing::AdminState s) {
  switch (s) {
    case routing::AdminState::kUp:
      return "up";
    case routing::AdminState::kDrain:
      return "drain";
    case routing::AdminState::kDown:
      return "down";
  }
  return "up";
}

// "forwarding" once bytes flow, "login" while the backend login runs,
// "authorization" before.
std::string_view StateOf(const SessionRecord& r) {
  if (!r.forwarding.empty()) return "forwarding";
  if (!r.backend.empty()) return "login";
  return "authorization";
}

// Collects one answer per worker, then responds once.
struct Gather {
  std::mutex mu;
  int left = 0;
  std::vector<std::string> items;
  bool truncated = false;
  int found = 0;
  admin::Respond respond;
  std::function<admin::HttpResponse(Gather&)> finish;

  void Done() {
    // Called with mu held by the caller's lock.
    if (--left == 0) respond(finish(*this));
  }
};

}  // namespace

absl::StatusOr<std::string> ReadAdminToken(const Config& config) {
  const AdminConfig& a = config.admin;
  if (a.token_file.empty()) return std::string();
  auto fail = [&](const char* why) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.path, ":", a.token_file_line, ": admin token_file ",
                     JsonEscape(a.token_file), ": ", why));
  };
  std::ifstream in(a.token_file, std::ios::binary);
  if (!in) return fail("cannot be read");
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return fail("the first line (the token) is empty");
  if (line.size() > kMaxToken) return fail("the token is over 4096 bytes");
  for (unsigned char c : line) {
    if (c <= 0x20 || c >= 0x7f) {
      return fail("the token must be printable ASCII without blanks");
    }
  }
  return line;
}

AdminApi::AdminApi(metrics::Registry& registry, AdminDeps deps)
    : registry_(registry),
      deps_(std::move(deps)),
      started_(absl::Now()),
      reloads_(registry.AddCounter(
          "popgate_reloads",
          "Config reloads (SIGHUP or POST /reload), by result (ok, failed).",
          {"result"}, 4)) {
  using metrics::Sample;
  using metrics::Type;
  registry_.AddCollector(
      "popgate_build_info", "The running popgate's version (always 1).",
      Type::kGauge, {"version"}, [v = deps_.version](std::vector<Sample>& out) {
        out.push_back({{v}, 1});
      });
  registry_.AddCollector(
      "popgate_start_time_seconds", "When this process started (Unix time).",
      Type::kGauge, {}, [t = started_](std::vector<Sample>& out) {
        out.push_back({{}, absl::ToDoubleSeconds(t - absl::UnixEpoch())});
      });
  registry_.AddCollector(
      "popgate_uptime_seconds", "Seconds since this process started.",
      Type::kGauge, {}, [t = started_](std::vector<Sample>& out) {
        out.push_back({{}, absl::ToDoubleSeconds(absl::Now() - t)});
      });
  auto* workers = deps_.workers;
  registry_.AddCollector(
      "popgate_workers", "Worker threads.", Type::kGauge, {},
      [workers](std::vector<Sample>& out) {
        out.push_back({{}, static_cast<double>(workers->size())});
      });
  registry_.AddCollector(
      "popgate_active_sessions",
      "Client connections open now, by worker (accepted, not yet closed).",
      Type::kGauge, {"worker"}, [workers](std::vector<Sample>& out) {
        for (const auto& w : *workers) {
          out.push_back({{absl::StrCat(w->index())},
                         static_cast<double>(w->live_sessions())});
        }
      });
  registry_.AddCollector(
      "popgate_worker_sessions_ended",
      "Client connections closed since start, by worker.", Type::kCounter,
      {"worker"}, [workers](std::vector<Sample>& out) {
        for (const auto& w : *workers) {
          out.push_back({{absl::StrCat(w->index())},
                         static_cast<double>(w->sessions_ended())});
        }
      });
  if (const SessionFdBudget* fds = deps_.fd_budget; fds != nullptr) {
    registry_.AddCollector(
        "popgate_fd_session_limit",
        "Sessions the process's descriptor limit holds (RLIMIT_NOFILE less "
        "a reserve, two sockets each; 0: no bound); at that many, workers "
        "stop accepting until sessions end.",
        Type::kGauge, {}, [fds](std::vector<Sample>& out) {
          out.push_back({{}, static_cast<double>(fds->max_sessions())});
        });
    registry_.AddCollector(
        "popgate_accept_pauses",
        "Times a worker stopped accepting because the process held as many "
        "sessions as its descriptor limit holds (new connections waited in "
        "the listen backlog).",
        Type::kCounter, {}, [fds](std::vector<Sample>& out) {
          out.push_back({{}, static_cast<double>(fds->pauses())});
        });
  }
  auto* hash = deps_.hash_pool;
  auto* sign = deps_.sign_pool;
  registry_.AddCollector(
      "popgate_pool_queued",
      "Jobs waiting in the password-hash (hash) and TLS-signing (sign) "
      "pools.",
      Type::kGauge, {"pool"}, [hash, sign](std::vector<Sample>& out) {
        if (hash != nullptr) {
          out.push_back({{"hash"}, static_cast<double>(hash->queued())});
        }
        if (sign != nullptr) {
          out.push_back({{"sign"}, static_cast<double>(sign->queued())});
        }
      });
  registry_.AddCollector(
      "popgate_pool_queue_limit", "The pools' queue bounds.", Type::kGauge,
      {"pool"}, [hash, sign](std::vector<Sample>& out) {
        if (hash != nullptr) {
          out.push_back({{"hash"}, static_cast<double>(hash->queue_limit())});
        }
        if (sign != nullptr) {
          out.push_back({{"sign"}, static_cast<double>(sign->queue_limit())});
        }
      });
  registry_.AddCollector(
      "popgate_pool_rejected",
      "Jobs refused because a pool's queue was full (logins answered "
      "[SYS/TEMP], handshakes failed).",
      Type::kCounter, {"pool"}, [hash, sign](std::vector<Sample>& out) {
        if (hash != nullptr) {
          out.push_back({{"hash"}, static_cast<double>(hash->rejected())});
        }
        if (sign != nullptr) {
          out.push_back({{"sign"}, static_cast<double>(sign->rejected())});
        }
      });
  auto* store = deps_.store;
  registry_.AddCollector(
      "popgate_backend_health",
      "Each backend's health as this process sees it: 1 for its current "
      "state (unknown, up, down), 0 for the others.",
      Type::kGauge, {"tenant", "backend", "state"},
      [store](std::vector<Sample>& out) {
        const std::shared_ptr<const Snapshot> snap = store->Get();
        const absl::Time now = absl::Now();
        for (const auto& pool : snap->health) {
          for (const auto& h : pool) {
            const HealthState st = h->state(now);
            for (HealthState s : {HealthState::kUnknown, HealthState::kUp,
                                  HealthState::kDown}) {
              out.push_back(
                  {{h->tenant(), h->address(), std::string(HealthStateName(s))},
                   st == s ? 1.0 : 0.0});
            }
          }
        }
      });
  registry_.AddCollector(
      "popgate_backend_admin_state",
      "Each backend's operator state in force (config or admin API): 1 for "
      "it (up, drain, down), 0 for the others.",
      Type::kGauge, {"tenant", "backend", "state"},
      [store](std::vector<Sample>& out) {
        const std::shared_ptr<const Snapshot> snap = store->Get();
        for (size_t t = 0; t < snap->health.size(); ++t) {
          const auto& specs = snap->config.tenants[t].spec.backends;
          for (size_t b = 0; b < snap->health[t].size(); ++b) {
            const BackendHealth& h = *snap->health[t][b];
            const routing::AdminState st = h.EffectiveState(specs[b].state);
            for (routing::AdminState s :
                 {routing::AdminState::kUp, routing::AdminState::kDrain,
                  routing::AdminState::kDown}) {
              out.push_back(
                  {{h.tenant(), h.address(), std::string(AdminStateName(s))},
                   st == s ? 1.0 : 0.0});
            }
          }
        }
      });
  registry_.AddCollector(
      "popgate_backend_sessions",
      "Sessions this process has on each backend now (max_connections "
      "counts these).",
      Type::kGauge, {"tenant", "backend"}, [store](std::vector<Sample>& out) {
        const std::shared_ptr<const Snapshot> snap = store->Get();
        for (const auto& pool : snap->health) {
          for (const auto& h : pool) {
            out.push_back({{h->tenant(), h->address()},
                           static_cast<double>(h->sessions())});
          }
        }
      });
  registry_.AddCollector(
      "popgate_config_last_reload_successful",
      "1 if the last reload applied (or none was tried), 0 if it failed.",
      Type::kGauge, {}, [this](std::vector<Sample>& out) {
        out.push_back({{}, static_cast<double>(last_reload_ok_.load())});
      });
  auto* checker = deps_.checker;
  registry_.AddCollector(
      "popgate_ready",
      "1 while /readyz answers 200 (listening, first health round done, "
      "not draining).",
      Type::kGauge, {}, [this, checker](std::vector<Sample>& out) {
        const bool ready = !draining_.load() &&
                           (checker == nullptr || checker->FirstRoundDone());
        out.push_back({{}, ready ? 1.0 : 0.0});
      });
}

AdminApi::~AdminApi() { Stop(); }

absl::Status AdminApi::Start(const AdminConfig& config, std::string token) {
  if (config.listen.empty()) return absl::OkStatus();
  admin::HttpServerOptions o;
  o.listen = config.listen;
  o.token = std::move(token);
  o.request_timeout = config.request_timeout;
  o.max_connections = config.max_connections;
  o.log = deps_.log;
  server_ = std::make_unique<admin::HttpServer>(std::move(o));
  Routes();
  absl::Status s = server_->Start();
  if (!s.ok()) {
    server_.reset();
    return s;
  }
  if (deps_.log) {
    deps_.log(LogLine(LogLevel::kInfo, "admin_listening",
                      absl::StrCat(",\"address\":", Quoted(server_->bound()))));
  }
  return absl::OkStatus();
}

void AdminApi::Stop() {
  if (server_ != nullptr) server_->Stop();
  // Reloads nobody will do any more.
  std::vector<admin::Respond> left = TakeReloadWaiters();
  for (auto& r : left) r(admin::HttpResponse::Text(503, "shutting down"));
}

void AdminApi::Routes() {
  using admin::HttpRequest;
  using admin::HttpResponse;
  using admin::Respond;
  server_->Route(
      "GET", "/metrics", [this](const HttpRequest& req, Respond respond) {
        const metrics::Format f =
            metrics::FormatForAccept(req.Header("accept").value_or(""));
        HttpResponse r;
        r.content_type = std::string(metrics::ContentType(f));
        r.body = registry_.Render(f);
        respond(std::move(r));
      });
  server_->Route(
      "GET", "/healthz",
      [](const HttpRequest&, Respond respond) {
        respond(HttpResponse::Text(200, "ok"));
      },
      /*open=*/true);
  server_->Route(
      "GET", "/readyz",
      [this](const HttpRequest&, Respond respond) {
        if (draining_.load(std::memory_order_acquire)) {
          respond(HttpResponse::Text(503, "draining"));
        } else if (deps_.checker != nullptr &&
                   !deps_.checker->FirstRoundDone()) {
          respond(HttpResponse::Text(503, "first health-check round running"));
        } else {
          respond(HttpResponse::Text(200, "ready"));
        }
      },
      /*open=*/true);
  server_->Route("GET", "/sessions",
                 [this](const HttpRequest& req, Respond respond) {
                   Sessions(req, std::move(respond));
                 });
  server_->Route("POST", "/sessions/{}/close",
                 [this](const HttpRequest& req, Respond respond) {
                   CloseSession(req, std::move(respond));
                 });
  for (auto [verb, state] : {std::pair{"drain", routing::AdminState::kDrain},
                             std::pair{"up", routing::AdminState::kUp},
                             std::pair{"down", routing::AdminState::kDown}}) {
    server_->Route("POST", absl::StrCat("/backends/{}/", verb),
                   [this, state](const HttpRequest& req, Respond respond) {
                     SetBackendState(req, std::move(respond), state);
                   });
  }
  server_->Route("POST", "/reload",
                 [this](const HttpRequest&, Respond respond) {
                   Reload(std::move(respond));
                 });
}

void AdminApi::Sessions(const admin::HttpRequest& req, admin::Respond respond) {
  struct Filter {
    std::optional<std::string> tenant, user, backend;
  };
  auto filter = std::make_shared<Filter>(Filter{req.QueryParam("tenant"),
                                                req.QueryParam("user"),
                                                req.QueryParam("backend")});
  auto g = std::make_shared<Gather>();
  g->respond = std::move(respond);
  g->finish = [](Gather& g) {
    std::string body = "{\"sessions\":[";
    for (size_t i = 0; i < g.items.size(); ++i) {
      if (i > 0) body += ",";
      body += g.items[i];
    }
    absl::StrAppend(&body, "],\"count\":", g.items.size(),
                    ",\"truncated\":", g.truncated ? "true" : "false", "}");
    return admin::HttpResponse::Json(200, std::move(body));
  };
  const int n = static_cast<int>(deps_.workers->size());
  g->left = n + 1;  // +1: this call's own, so no worker finishes early
  for (const auto& w : *deps_.workers) {
    const bool queued = w->RunOnLoop([g, filter](Worker& worker) {
      std::vector<std::string> mine;
      bool truncated = false;
      const absl::Time now = absl::Now();
      for (const LiveSession* s : worker.live()) {
        const SessionRecord* r = s->record;
        if (r == nullptr) continue;
        if (filter->tenant && r->tenant != *filter->tenant) continue;
        if (filter->user && r->user != *filter->user) continue;
        if (filter->backend && r->backend != *filter->backend) continue;
        if (mine.size() >= kMaxListedSessions) {
          truncated = true;
          break;
        }
        mine.push_back(absl::StrCat(
            "{\"id\":", Quoted(r->session_id), ",\"worker\":", worker.index(),
            ",\"listener\":", Quoted(r->listener),
            ",\"client\":", Quoted(r->client),
            ",\"tenant\":", Quoted(r->tenant), ",\"user\":", Quoted(r->user),
            ",\"mechanism\":", Quoted(r->mechanism), ",\"backend\":",
            Quoted(r->backend), ",\"state\":", Quoted(StateOf(*r)),
            ",\"bytes_in\":", r->bytes_in, ",\"bytes_out\":", r->bytes_out,
            ",\"start\":\"", FormatLogTime(r->start),
            "\",\"age_seconds\":", absl::ToInt64Seconds(now - r->start), "}"));
      }
      std::lock_guard<std::mutex> lock(g->mu);
      for (std::string& item : mine) {
        if (g->items.size() >= kMaxListedSessions) {
          g->truncated = true;
          break;
        }
        g->items.push_back(std::move(item));
      }
      g->truncated |= truncated;
      g->Done();
    });
    if (!queued) {
      std::lock_guard<std::mutex> lock(g->mu);
      g->Done();
    }
  }
  std::lock_guard<std::mutex> lock(g->mu);
  g->Done();
}

void AdminApi::CloseSession(const admin::HttpRequest& req,
                            admin::Respond respond) {
  const std::string id = req.params.empty() ? "" : req.params[0];
  auto g = std::make_shared<Gather>();
  g->respond = std::move(respond);
  g->finish = [id](Gather& g) {
    return g.found > 0
               ? admin::HttpResponse::Json(
                     200, absl::StrCat("{\"closed\":", Quoted(id), "}"))
               : admin::HttpResponse::Json(
                     404, absl::StrCat("{\"error\":\"no live session with "
                                       "that id\",\"id\":",
                                       Quoted(id), "}"));
  };
  g->left = static_cast<int>(deps_.workers->size()) + 1;
  for (const auto& w : *deps_.workers) {
    const bool queued = w->RunOnLoop([g, id](Worker& worker) {
      int found = 0;
      for (LiveSession* s : worker.live()) {
        if (s->record != nullptr && s->record->session_id == id) {
          worker.CutSession(s);
          ++found;
        }
      }
      std::lock_guard<std::mutex> lock(g->mu);
      g->found += found;
      g->Done();
    });
    if (!queued) {
      std::lock_guard<std::mutex> lock(g->mu);
      g->Done();
    }
  }
  if (deps_.log) {
    deps_.log(LogLine(LogLevel::kInfo, "admin_close_session",
                      absl::StrCat(",\"session\":", Quoted(id))));
  }
  std::lock_guard<std::mutex> lock(g->mu);
  g->Done();
}

void AdminApi::SetBackendState(const admin::HttpRequest& req,
                               admin::Respond respond,
                               routing::AdminState state) {
  const std::string addr = req.params.empty() ? "" : req.params[0];
  const std::optional<std::string> tenant = req.QueryParam("tenant");
  const std::shared_ptr<const Snapshot> snap = deps_.store->Get();
  std::vector<const BackendHealth*> matched;
  std::string tenants;
  for (size_t t = 0; t < snap->health.size(); ++t) {
    const TenantConfig& tc = snap->config.tenants[t];
    if (tenant && tc.spec.name != *tenant) continue;
    for (size_t b = 0; b < snap->health[t].size(); ++b) {
      if (tc.spec.backends[b].address != addr) continue;
      BackendHealth& h = *snap->health[t][b];
      h.SetAdminOverride(state, tc.spec.backends[b].state);
      matched.push_back(&h);
      absl::StrAppend(&tenants, tenants.empty() ? "" : ",",
                      Quoted(tc.spec.name));
      if (deps_.log) {
        deps_.log(
            LogLine(LogLevel::kInfo, "backend_admin_state",
                    absl::StrCat(",\"tenant\":", Quoted(tc.spec.name),
                                 ",\"backend\":", Quoted(addr),
                                 ",\"state\":", Quoted(AdminStateName(state)),
                                 ",\"source\":\"admin_api\"")));
      }
    }
  }
  if (matched.empty()) {
    respond(admin::HttpResponse::Json(
        404, absl::StrCat("{\"error\":\"no backend with that address\","
                          "\"backend\":",
                          Quoted(addr), "}")));
    return;
  }
  if (state == routing::AdminState::kDown) {
    // As a reload to state = "down" does: this instance's sessions on it
    // are cut (no QUIT), each by its own worker.
    auto cut = std::make_shared<std::vector<const BackendHealth*>>(matched);
    for (const auto& w : *deps_.workers) {
      w->RunOnLoop([cut](Worker& worker) {
        std::vector<LiveSession*> victims;
        for (LiveSession* s : worker.live()) {
          for (const BackendHealth* h : *cut) {
            if (s->backend == h) victims.push_back(s);
          }
        }
        for (LiveSession* s : victims) {
          worker.CutSession(s);
          s->cut_backend_down = true;
        }
      });
    }
  }
  respond(admin::HttpResponse::Json(
      200, absl::StrCat("{\"backend\":", Quoted(addr),
                        ",\"state\":", Quoted(AdminStateName(state)),
                        ",\"tenants\":[", tenants, "]}")));
}

void AdminApi::Reload(admin::Respond respond) {
  {
    std::lock_guard<std::mutex> lock(reload_mu_);
    if (reload_waiters_.size() >= kMaxReloadWaiters) {
      respond(admin::HttpResponse::Text(503, "too many reloads waiting"));
      return;
    }
    reload_waiters_.push_back(std::move(respond));
  }
  // Main's own reload path: the SIGHUP it waits for (blocked in every
  // thread, taken by main's sigtimedwait).
  ::kill(::getpid(), SIGHUP);
}

std::vector<admin::Respond> AdminApi::TakeReloadWaiters() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  return std::exchange(reload_waiters_, {});
}

void AdminApi::FinishReload(std::vector<admin::Respond> waiters,
                            const ReloadOutcome& outcome) {
  reloads_.Add(registry_.shared_shard(), {outcome.ok ? "ok" : "failed"});
  last_reload_ok_.store(outcome.ok ? 1 : 0);
  if (waiters.empty()) return;
  std::string restart;
  for (const std::string& s : outcome.restart) {
    absl::StrAppend(&restart, restart.empty() ? "" : ",", Quoted(s));
  }
  std::string body =
      absl::StrCat("{\"result\":\"", outcome.ok ? "ok" : "failed", "\"");
  if (!outcome.ok) absl::StrAppend(&body, ",\"error\":", Quoted(outcome.error));
  if (!outcome.ticket_keys.empty()) {
    absl::StrAppend(&body, ",\"ticket_keys\":", Quoted(outcome.ticket_keys));
  }
  absl::StrAppend(&body, ",\"restart_needed\":[", restart, "]}");
  for (auto& r : waiters) {
    r(admin::HttpResponse::Json(outcome.ok ? 200 : 409, body));
  }
}

}  // namespace popgate
