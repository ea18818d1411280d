#include "store/redis_connection.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <poll.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/wipe.h"

namespace popgate::store {

struct Adapter;

namespace {

// One call: what its awaiter gets, shared with the hiredis callbacks of its
// commands. Freed by whichever holder lets go last (the awaiter, the
// deadline queue, each command's callback), so a reply that arrives after
// the call timed out finds it finished, never freed.
struct Call {
  RedisConnection::Core* core = nullptr;
  std::coroutine_handle<> waiter;
  int expected = 0;  // replies still to come
  int refs = 0;
  bool done = false;
  absl::Status status;
  std::vector<RedisReply> replies;
  absl::Time deadline;
};

void Unref(Call* call) {
  if (--call->refs == 0) delete call;
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(Convert(r->element[i]));
      }
      break;
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

// The error a lost context left, for messages (hiredis's text: "Connection
// refused", "Server closed the connection", ...).
std::string ContextError(const redisAsyncContext* ac) {
  if (ac != nullptr && ac->c.err != 0 && ac->c.errstr[0] != '\0') {
    return ac->c.errstr;
  }
  return "connection closed";
}

}  // namespace

// The event adapter of one hiredis context: hiredis says which readiness it
// wants, we arm a one-shot POLL_ADD for it. Lives while its context does
// and while any of its polls is in flight (a cancelled poll still
// completes).
struct Adapter {
  struct Poll {
    Completion completion;
    Adapter* adapter = nullptr;
    bool read = false;
    bool in_flight = false;
  };

  RedisConnection::Core* core = nullptr;
  redisAsyncContext* ac = nullptr;  // null once hiredis cleaned it up
  Poll rd, wr;
  bool want_read = false;
  bool want_write = false;
  int refs = 1;  // the context's

  void Arm(Poll& p);
  static void OnPoll(void* ctx, int result, uint32_t flags);
  void Unref();
};

struct RedisConnection::Core {
  Ring* ring = nullptr;
  RedisOptions opts;
  std::string address;

  Adapter* adapter = nullptr;  // the current context's
  int adapters_alive = 0;
  bool connected = false;       // its connect completed
  bool healthy = false;         // a reply came on it
  bool context_failed = false;  // it is being lost with calls failing

  // Issued calls in order (so by deadline), each holding a ref; finished
  // ones are dropped from the front.
  std::deque<Call*> calls;
  size_t pending = 0;  // of those, not finished

  Completion timer;
  __kernel_timespec timer_ts{};
  bool timer_in_flight = false;

  absl::Time next_attempt = absl::InfinitePast();
  absl::Duration backoff;
  std::string last_error;

  int in_hiredis = 0;  // inside redisAsyncHandleRead/Write
  std::optional<absl::Status> deferred_fail;
  bool closed = false;
  bool owner_gone = false;

  bool idle() const { return adapters_alive == 0 && !timer_in_flight; }
  void MaybeDelete() {
    if (owner_gone && idle()) delete this;
  }

  absl::Status Connect();
  absl::StatusOr<Call*> Issue(const std::vector<RedisCommand>& commands,
                              bool awaited);
  void CompleteCall(Call* call, absl::Status status);
  void PopFinished();
  void ArmTimer();
  static void OnTimer(void* ctx, int result, uint32_t flags);
  // Fails every pending call with `status` and drops the context. Inside
  // hiredis (a callback), only noted: done when hiredis has returned.
  void RequestFail(absl::Status status);
  void Fail(absl::Status status);
  void RunDeferredFail();
  void ContextGone();
  void BackOff();

  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata);
  static void OnSetupReply(redisAsyncContext* ac, void* reply, void* privdata);
  static void OnConnect(const redisAsyncContext* ac, int status);
};

namespace {

void AddRead(void* privdata) {
  auto* a = static_cast<Adapter*>(privdata);
  a->want_read = true;
  a->Arm(a->rd);
}
void DelRead(void* privdata) {
  static_cast<Adapter*>(privdata)->want_read = false;
}
void AddWrite(void* privdata) {
  auto* a = static_cast<Adapter*>(privdata);
  a->want_write = true;
  a->Arm(a->wr);
}
void DelWrite(void* privdata) {
  static_cast<Adapter*>(privdata)->want_write = false;
}

// hiredis is freeing the context (it closes the fd right after): cancel
// our polls (by user_data, so a reused fd number is never hit) and let
// the connection know.
void Cleanup(void* privdata) {
  auto* a = static_cast<Adapter*>(privdata);
  if (a->ac == nullptr) return;  // hiredis may call it twice
  a->ac = nullptr;
  a->want_read = a->want_write = false;
  for (Adapter::Poll* p : {&a->rd, &a->wr}) {
    if (!p->in_flight) continue;
    io_uring_sqe* sqe = a->core->ring->GetSqe();
    io_uring_prep_cancel(sqe, &p->completion, 0);
    io_uring_sqe_set_data(sqe, nullptr);
  }
  RedisConnection::Core* core = a->core;
  if (core->adapter == a) core->ContextGone();
  a->Unref();
}

}  // namespace

void Adapter::Arm(Poll& p) {
  if (ac == nullptr || p.in_flight) return;
  p.adapter = this;
  p.completion.callback = &Adapter::OnPoll;
  p.completion.ctx = &p;
  io_uring_sqe* sqe = core->ring->GetSqe();
  io_uring_prep_poll_add(sqe, ac->c.fd, p.read ? POLLIN : POLLOUT);
  io_uring_sqe_set_data(sqe, &p.completion);
  p.in_flight = true;
  ++refs;
}

void Adapter::OnPoll(void* ctx, int result, uint32_t /*flags*/) {
  auto* p = static_cast<Poll*>(ctx);
  Adapter* a = p->adapter;
  RedisConnection::Core* core = a->core;
  p->in_flight = false;
  if (a->ac != nullptr && result != -ECANCELED) {
    const bool wanted = p->read ? a->want_read : a->want_write;
    if (wanted) {
      ++core->in_hiredis;
      if (p->read) {
        redisAsyncHandleRead(a->ac);
      } else {
        redisAsyncHandleWrite(a->ac);
      }
      --core->in_hiredis;
      // A poll is one-shot where hiredis expects level-triggered interest
      // that lasts until it says otherwise: re-arm what it still wants.
      if (a->ac != nullptr && (p->read ? a->want_read : a->want_write)) {
        a->Arm(*p);
      }
    }
  }
  core->RunDeferredFail();
  a->Unref();
}

void Adapter::Unref() {
  if (--refs > 0) return;
  RedisConnection::Core* c = core;
  delete this;
  --c->adapters_alive;
  c->MaybeDelete();
}

long long RedisReply::AsInteger() const {
  if (type == Type::kInteger) return integer;
  if (type != Type::kString) return 0;
  long long v = 0;
  auto [ptr, ec] = std::from_chars(str.data(), str.data() + str.size(), v);
  if (ec != std::errc() || ptr != str.data() + str.size()) return 0;
  return v;
}

void RedisConnection::Core::BackOff() {
  next_attempt = absl::Now() + backoff;
  backoff = std::min(backoff * 2, opts.max_backoff);
}

absl::Status RedisConnection::Core::Connect() {
  const absl::Time now = absl::Now();
  if (now < next_attempt) {
    return absl::UnavailableError(
        absl::StrCat("redis ", address, ": ", last_error, " (next try in ",
                     absl::ToInt64Milliseconds(next_attempt - now), " ms)"));
  }
  redisAsyncContext* ac = opts.unix_path.empty()
                              ? redisAsyncConnect(opts.host.c_str(), opts.port)
                              : redisAsyncConnectUnix(opts.unix_path.c_str());
  if (ac == nullptr || ac->err != 0) {
    last_error = ac == nullptr ? "out of memory" : ContextError(ac);
    if (ac != nullptr) redisAsyncFree(ac);
    BackOff();
    return absl::UnavailableError(
        absl::StrCat("redis ", address, ": ", last_error));
  }
  auto* a = new Adapter;
  a->core = this;
  a->ac = ac;
  a->rd.read = true;
  ++adapters_alive;
  adapter = a;
  connected = false;
  healthy = false;
  context_failed = false;
  ac->data = a;
  ac->ev.data = a;
  ac->ev.addRead = &AddRead;
  ac->ev.delRead = &DelRead;
  ac->ev.addWrite = &AddWrite;
  ac->ev.delWrite = &DelWrite;
  ac->ev.cleanup = &Cleanup;
  // Arms the first write poll: its readiness is the connect's completion.
  redisAsyncSetConnectCallback(ac, &Core::OnConnect);
  if (!opts.password.empty() && !opts.user.empty()) {
    const char* argv[] = {"AUTH", opts.user.data(), opts.password.data()};
    const size_t lens[] = {4, opts.user.size(), opts.password.size()};
    redisAsyncCommandArgv(ac, &Core::OnSetupReply, this, 3, argv, lens);
  } else if (!opts.password.empty()) {
    const char* argv[] = {"AUTH", opts.password.data()};
    const size_t lens[] = {4, opts.password.size()};
    redisAsyncCommandArgv(ac, &Core::OnSetupReply, this, 2, argv, lens);
  }
  if (opts.db != 0) {
    const std::string db = absl::StrCat(opts.db);
    const char* argv[] = {"SELECT", db.data()};
    const size_t lens[] = {6, db.size()};
    redisAsyncCommandArgv(ac, &Core::OnSetupReply, this, 2, argv, lens);
  }
  return absl::OkStatus();
}

absl::StatusOr<Call*> RedisConnection::Core::Issue(
    const std::vector<RedisCommand>& commands, bool awaited) {
  if (closed) {
    return absl::CancelledError(
        absl::StrCat("redis ", address, ": connection closed"));
  }
  if (pending >= opts.max_pending) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "redis ", address, ": ", pending, " calls waiting for replies"));
  }
  if (adapter == nullptr) {
    if (absl::Status s = Connect(); !s.ok()) return s;
  }
  auto* call = new Call;
  call->core = this;
  call->refs = 1 + (awaited ? 1 : 0);  // the queue's, the awaiter's
  call->expected = static_cast<int>(commands.size());
  call->deadline = absl::Now() + opts.timeout;
  calls.push_back(call);
  ++pending;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const RedisCommand& command : commands) {
    argv.clear();
    lens.clear();
    for (const std::string& arg : command) {
      argv.push_back(arg.data());
      lens.push_back(arg.size());
    }
    ++call->refs;
    if (adapter == nullptr ||
        redisAsyncCommandArgv(adapter->ac, &Core::OnReply, call,
                              static_cast<int>(argv.size()), argv.data(),
                              lens.data()) != REDIS_OK) {
      --call->refs;
      CompleteCall(call, absl::UnavailableError(absl::StrCat(
                             "redis ", address, ": connection lost")));
      break;
    }
  }
  if (!awaited && call->done) {
    absl::Status failed = call->status;
    ArmTimer();  // drops it from the queue
    return failed;
  }
  ArmTimer();
  // Awaited: the awaiter's ref keeps it. Not awaited: the queue's may be
  // gone by now, so it is not to be touched.
  return awaited ? call : nullptr;
}

void RedisConnection::Core::CompleteCall(Call* call, absl::Status status) {
  if (call->done) return;
  call->done = true;
  call->status = std::move(status);
  --pending;
  if (call->waiter) {
    // Resumed after this batch of completions, never from inside hiredis.
    ring->Defer(std::exchange(call->waiter, {}));
  }
}

void RedisConnection::Core::PopFinished() {
  while (!calls.empty() && calls.front()->done) {
    Unref(calls.front());
    calls.pop_front();
  }
}

void RedisConnection::Core::ArmTimer() {
  PopFinished();
  if (timer_in_flight || closed || calls.empty()) return;
  timer.callback = &Core::OnTimer;
  timer.ctx = this;
  timer_ts = ToKernelTimespec(calls.front()->deadline - absl::Now());
  io_uring_sqe* sqe = ring->GetSqe();
  io_uring_prep_timeout(sqe, &timer_ts, 0, 0);
  io_uring_sqe_set_data(sqe, &timer);
  timer_in_flight = true;
}

void RedisConnection::Core::OnTimer(void* ctx, int /*result*/,
                                    uint32_t /*flags*/) {
  auto* core = static_cast<Core*>(ctx);
  core->timer_in_flight = false;
  if (core->closed) {
    core->MaybeDelete();
    return;
  }
  core->PopFinished();
  if (core->calls.empty()) return;
  if (core->calls.front()->deadline <= absl::Now() + absl::Milliseconds(1)) {
    core->Fail(absl::DeadlineExceededError(
        absl::StrCat("redis ", core->address, ": no reply within ",
                     absl::FormatDuration(core->opts.timeout))));
  }
  core->ArmTimer();
}

void RedisConnection::Core::RequestFail(absl::Status status) {
  if (in_hiredis > 0) {
    if (!deferred_fail) deferred_fail = std::move(status);
    return;
  }
  Fail(std::move(status));
}

void RedisConnection::Core::RunDeferredFail() {
  if (in_hiredis > 0 || !deferred_fail) return;
  absl::Status s = std::move(*deferred_fail);
  deferred_fail.reset();
  Fail(std::move(s));
}

void RedisConnection::Core::Fail(absl::Status status) {
  last_error = std::string(status.message());
  for (Call* call : calls) CompleteCall(call, status);
  PopFinished();
  if (adapter != nullptr) {
    context_failed = true;
    // Runs the remaining callbacks with no reply (their calls are done),
    // then Cleanup, which ends in ContextGone.
    redisAsyncFree(adapter->ac);
  }
}

void RedisConnection::Core::ContextGone() {
  adapter = nullptr;
  connected = false;
  const bool failed = context_failed || !healthy || pending > 0;
  for (Call* call : calls) {
    CompleteCall(call, absl::UnavailableError(
                           absl::StrCat("redis ", address, ": ", last_error)));
  }
  PopFinished();
  healthy = false;
  context_failed = false;
  if (failed) {
    BackOff();
  } else {
    // It worked and closed while idle (a server-side timeout, a restart):
    // the next use reconnects at once.
    next_attempt = absl::InfinitePast();
  }
}

void RedisConnection::Core::OnReply(redisAsyncContext* ac, void* r,
                                    void* privdata) {
  auto* call = static_cast<Call*>(privdata);
  Core* core = call->core;
  auto* reply = static_cast<redisReply*>(r);
  if (!call->done) {
    if (reply == nullptr) {
      core->context_failed = true;
      core->last_error = ContextError(ac);
      core->CompleteCall(
          call, absl::UnavailableError(absl::StrCat("redis ", core->address,
                                                    ": ", core->last_error)));
    } else if (core->deferred_fail) {
      // AUTH or SELECT was refused: what follows it is no real answer.
      core->CompleteCall(call, *core->deferred_fail);
    } else {
      call->replies.push_back(Convert(reply));
      core->healthy = true;
      core->backoff = core->opts.min_backoff;
      if (--call->expected == 0) core->CompleteCall(call, absl::OkStatus());
    }
  }
  Unref(call);
}

void RedisConnection::Core::OnSetupReply(redisAsyncContext* /*ac*/, void* r,
                                         void* privdata) {
  auto* core = static_cast<Core*>(privdata);
  auto* reply = static_cast<redisReply*>(r);
  if (reply == nullptr || reply->type != REDIS_REPLY_ERROR) return;
  // Redis's error text ("WRONGPASS invalid username-password pair", "ERR DB
  // index is out of range") never holds the password.
  core->RequestFail(absl::UnavailableError(absl::StrCat(
      "redis ", core->address, ": ", std::string(reply->str, reply->len))));
}

void RedisConnection::Core::OnConnect(const redisAsyncContext* ac, int status) {
  auto* a = static_cast<Adapter*>(ac->data);
  Core* core = a->core;
  if (core->adapter != a) return;
  if (status == REDIS_OK) {
    core->connected = true;
  } else {
    core->context_failed = true;
    core->last_error = ContextError(ac);
  }
}

RedisConnection::RedisConnection(Ring& ring, RedisOptions options)
    : core_(new Core) {
  core_->ring = &ring;
  core_->opts = std::move(options);
  if (!core_->opts.unix_path.empty()) {
    core_->address = absl::StrCat("unix:", core_->opts.unix_path);
  } else if (core_->opts.host.find(':') == std::string::npos) {
    core_->address = absl::StrCat(core_->opts.host, ":", core_->opts.port);
  } else {
    core_->address =
        absl::StrCat("[", core_->opts.host, "]:", core_->opts.port);
  }
  core_->backoff = core_->opts.min_backoff;
}

RedisConnection::~RedisConnection() {
  if (!core_->closed) Close();
  Wipe(core_->opts.password);
  core_->owner_gone = true;
  core_->MaybeDelete();
}

void RedisConnection::Close() {
  Core* core = core_;
  if (core->closed) return;
  core->Fail(absl::CancelledError(
      absl::StrCat("redis ", core->address, ": connection closed")));
  core->closed = true;
  if (core->timer_in_flight) {
    io_uring_sqe* sqe = core->ring->GetSqe();
    io_uring_prep_timeout_remove(sqe, reinterpret_cast<uint64_t>(&core->timer),
                                 0);
    io_uring_sqe_set_data(sqe, nullptr);
  }
}

bool RedisConnection::idle() const { return core_->idle(); }
bool RedisConnection::connected() const { return core_->connected; }
const std::string& RedisConnection::address() const { return core_->address; }

namespace {

struct CallAwait {
  Call* call;
  bool await_ready() const noexcept { return call->done; }
  void await_suspend(std::coroutine_handle<> h) noexcept { call->waiter = h; }
  void await_resume() const noexcept {}
};

}  // namespace

Task<absl::StatusOr<std::vector<RedisReply>>> RedisConnection::Pipeline(
    std::vector<RedisCommand> commands) {
  if (commands.empty()) co_return std::vector<RedisReply>{};
  absl::StatusOr<Call*> issued = core_->Issue(commands, /*awaited=*/true);
  if (!issued.ok()) co_return issued.status();
  Call* call = *issued;
  co_await CallAwait{call};
  absl::StatusOr<std::vector<RedisReply>> out = absl::UnknownError("");
  if (call->status.ok()) {
    out = std::move(call->replies);
  } else {
    out = call->status;
  }
  Unref(call);
  co_return out;
}

Task<absl::StatusOr<RedisReply>> RedisConnection::Command(
    RedisCommand command) {
  std::vector<RedisCommand> one;
  one.push_back(std::move(command));
  absl::StatusOr<std::vector<RedisReply>> r = co_await Pipeline(std::move(one));
  if (!r.ok()) co_return r.status();
  co_return std::move(r->front());
}

bool RedisConnection::Send(const RedisCommand& command) {
  std::vector<RedisCommand> one{command};
  return core_->Issue(one, /*awaited=*/false).ok();
}

}  // namespace popgate::store
