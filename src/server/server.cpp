// The HTTP side of `halfbyte serve`: routes, authentication, limits, streaming
// (server-sent events), metrics and a graceful shutdown. Generation requests go
// to one model::Batcher, which runs every active sequence in one forward pass per
// step; HTTP threads only parse, wait and write.
#include "server/server.hpp"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "halfbyte/core/error.hpp"
#include "halfbyte/model/batcher.hpp"
#include "halfbyte/model/encoder.hpp"
#include "halfbyte/model/model.hpp"
#include "halfbyte/model/tokenizer.hpp"
#include "server/api.hpp"
#include "server/metrics.hpp"

namespace halfbyte::server {

json openapi_document(const std::string& llm_id, const std::string& embed_id, bool classifier, int64_t max_tokens,
                      size_t max_inputs);

namespace {

using clock_type = std::chrono::steady_clock;

std::string model_id(const std::string& path, const std::string& alias) {
  if (!alias.empty()) return alias;
  std::string name = path;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  const size_t slash = name.find_last_of('/');
  if (slash != std::string::npos) name = name.substr(slash + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
  return name;
}

bool equal_constant_time(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= uint8_t(a[i]) ^ uint8_t(b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// What a generation request's HTTP thread waits on: pieces from the batcher's
// thread, then its result.
struct Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> pieces;
  bool done = false;
  model::BatchResult result;
  std::atomic<bool> gone{false};  // the client went away: cancel at the next piece
};

thread_local clock_type::time_point t_request_start;

// Every route and its method: 405 answers (with Allow) and the metrics' route
// label (anything else is "other", so hostile paths cannot grow the metrics).
const std::map<std::string, std::string>& routes_served() {
  static const std::map<std::string, std::string> r = {
      {"/health", "GET"},         {"/metrics", "GET"},         {"/openapi.json", "GET"},
      {"/v1/models", "GET"},      {"/v1/completions", "POST"}, {"/v1/chat/completions", "POST"},
      {"/v1/embeddings", "POST"}, {"/v1/classify", "POST"}};
  return r;
}

}  // namespace

class Server {
 public:
  explicit Server(const ServerOptions& o);
  int run();

 private:
  void routes();
  void generate(const httplib::Request& req, httplib::Response& res, bool chat);
  void embeddings(const httplib::Request& req, httplib::Response& res);
  void classify(const httplib::Request& req, httplib::Response& res);
  void check_model(const std::string& asked, const std::string& id, bool available, const char* what) const;
  void shutdown_when_signalled(sigset_t set);

  ServerOptions o_;
  Limits lim_;
  std::unique_ptr<model::Model> llm_;
  std::unique_ptr<model::Batcher> batcher_;
  std::unique_ptr<model::Encoder> encoder_;
  std::string llm_id_, embed_id_;
  int64_t created_ = unix_now();
  Metrics metrics_;
  httplib::Server http_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{1};
  std::atomic<int64_t> open_streams_{0};
};

Server::Server(const ServerOptions& o) : o_(o) {
  if (o.model.empty()) throw_invalid("serve: a model is required (-m MODEL)");
  if (o.parallel < 1 || o.parallel > 256) throw_invalid("serve: --parallel must be in [1, 256], got ", o.parallel);
  model::LoadOptions lo;
  lo.n_seq = o.parallel;
  lo.n_ctx = o.n_ctx;
  lo.n_threads = o.n_threads;
  lo.n_batch = 256;
  llm_ = model::Model::load(o.model, lo);
  llm_id_ = model_id(o.model, o.alias);
  lim_.n_ctx = llm_->n_ctx();
  lim_.max_tokens = std::min(o.max_tokens, llm_->n_ctx());
  model::BatcherOptions bo;
  bo.max_batch_tokens = 256;
  bo.prefill_chunk = 128;
  bo.own_thread = false;  // run() below: all model work on this thread
  batcher_ = std::make_unique<model::Batcher>(*llm_, bo);
  if (!o.embed_model.empty()) {
    model::EncoderOptions eo;
    eo.dtype = o.embed_dtype;
    eo.n_threads = o.n_threads;
    encoder_ = model::Encoder::load(o.embed_model, eo);
    embed_id_ = model_id(o.embed_model, o.embed_alias);
    if (embed_id_ == llm_id_) throw_invalid("serve: the two models have the same id '", llm_id_, "' (use --alias)");
  }
  routes();
}

void Server::check_model(const std::string& asked, const std::string& id, bool available, const char* what) const {
  if (!available)
    throw ApiError(404, std::string("no ") + what + " model is loaded (start the server with --embed-model)", "model",
                   "", "model_not_found");
  if (asked != id)
    throw ApiError(404, "the model '" + asked + "' does not exist here; this route serves '" + id + "'", "model", "",
                   "model_not_found");
}

void Server::routes() {
  const size_t threads = o_.http_threads > 0 ? size_t(o_.http_threads) : size_t(2 * o_.parallel + 8);
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_.set_payload_max_length(o_.max_body);
  http_.set_keep_alive_max_count(1000);
  http_.set_read_timeout(30, 0);
  http_.set_write_timeout(30, 0);

  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_request_start = clock_type::now();
    if (o_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.compare(0, 7, "Bearer ") == 0 && equal_constant_time(auth.substr(7), o_.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    send_json(res, 401, ApiError(401, "a valid API key is required: send 'Authorization: Bearer KEY'").body());
    return httplib::Server::HandlerResponse::Handled;
  });
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      send_json(res, e.status, e.body());
    } catch (const Error& e) {
      const int status = e.kind() == ErrorKind::InvalidArgument ? 400 : 500;
      send_json(res, status, ApiError(status, e.what()).body());
    } catch (const std::exception& e) {
      send_json(res, 500, ApiError(500, std::string("internal error: ") + e.what()).body());
    } catch (...) {
      send_json(res, 500, ApiError(500, "internal error").body());
    }
  });
  // Errors httplib answers itself (no route, body too large, bad HTTP) get a JSON body too.
  http_.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const auto& method_of = routes_served();
    std::string msg = "error";
    const auto route = method_of.find(req.path);
    if (res.status == 404 && route != method_of.end() && req.method != route->second) {
      res.status = 405;
      res.set_header("Allow", route->second);
      msg = req.path + " takes " + route->second + ", not " + req.method;
    } else if (res.status == 404) msg = "no route " + req.method + " " + req.path;
    else if (res.status == 413) msg = "the request body is too large";
    else if (res.status == 400 && !req.method.empty() && req.method.size() <= 16 &&
             std::all_of(req.method.begin(), req.method.end(), [](char c) { return c >= 'A' && c <= 'Z'; }) &&
             std::set<std::string>{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}.count(req.method) == 0) {
      res.status = 405;
      res.set_header("Allow", "GET, POST");
      msg = "method " + req.method + " not allowed";
    } else if (res.status == 400) msg = "malformed HTTP request";
    else if (res.status == 405) msg = "method not allowed";
    send_json(res, res.status, ApiError(res.status, msg).body());
    return httplib::Server::HandlerResponse::Handled;
  }));
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double secs = std::chrono::duration<double>(clock_type::now() - t_request_start).count();
    metrics_.request(routes_served().count(req.path) ? req.path : "other", res.status, secs);
  });

  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_) send_json(res, 503, {{"status", "draining"}});
    else send_json(res, 200, {{"status", "ok"}});
  });
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const model::BatcherStats s = batcher_->stats();
    res.set_content(metrics_.render(s.queued, s.active, batcher_->slots(), s.steps, s.batch_tokens, s.cached_tokens),
                    "text/plain; version=0.0.4");
  });
  http_.Get("/openapi.json", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, openapi_document(llm_id_, embed_id_, encoder_ && !encoder_->labels().empty(), lim_.max_tokens,
                                         lim_.max_inputs));
  });
  http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    data.push_back({{"id", llm_id_}, {"object", "model"}, {"created", created_}, {"owned_by", "halfbyte"}});
    if (encoder_)
      data.push_back({{"id", embed_id_}, {"object", "model"}, {"created", created_}, {"owned_by", "halfbyte"}});
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  });
  http_.Post("/v1/chat/completions",
             [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, true); });
  http_.Post("/v1/completions",
             [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, false); });
  http_.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) { embeddings(req, res); });
  http_.Post("/v1/classify", [this](const httplib::Request& req, httplib::Response& res) { classify(req, res); });
}

void Server::generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  if (draining_) throw ApiError(503, "the server is shutting down");
  const json j = parse_body(req.body, lim_);
  GenerateRequest g = chat ? parse_chat(j, lim_, *llm_) : parse_completion(j, lim_);
  check_model(g.model, llm_id_, true, "language");
  std::vector<int32_t> ids = llm_->tokenizer().encode(g.prompt, true, /*parse_special=*/g.chat);
  if (int64_t(ids.size()) >= llm_->n_ctx())
    throw ApiError(400,
                   "the prompt is " + std::to_string(ids.size()) + " tokens; the context holds " +
                       std::to_string(llm_->n_ctx()) + " per request (prompt + completion)",
                   chat ? "messages" : "prompt", "", "context_length_exceeded");
  if (batcher_->stats().queued >= o_.max_queue)
    throw ApiError(503, "the server is busy: " + std::to_string(o_.max_queue) + " requests are waiting");

  auto st = std::make_shared<Stream>();
  model::BatchRequest br;
  br.prompt = std::move(ids);
  br.params = g.params;
  br.on_piece = [st](std::string_view piece) {
    if (st->gone) return false;
    std::lock_guard<std::mutex> lk(st->mu);
    st->pieces.emplace_back(piece);
    st->cv.notify_all();
    return true;
  };
  br.on_done = [st, this](const model::BatchResult& r) {
    metrics_.tokens(r.prompt_tokens, r.completion_tokens);
    if (r.completion_tokens > 0) metrics_.time_to_first_token(r.first_token_seconds);
    std::lock_guard<std::mutex> lk(st->mu);
    st->result = r;
    st->done = true;
    st->cv.notify_all();
  };
  uint64_t bid = 0;
  try {
    bid = batcher_->submit(std::move(br));
  } catch (const Error& e) {
    throw ApiError(e.kind() == ErrorKind::InvalidArgument ? 400 : 503, e.what());
  }
  const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_++);
  const int64_t created = unix_now();

  if (!g.stream) {
    std::unique_lock<std::mutex> lk(st->mu);
    st->cv.wait(lk, [&] { return st->done; });
    std::string text;
    for (const auto& p : st->pieces) text += p;
    if (st->result.finish_reason == "error") throw ApiError(500, "generation failed: " + st->result.error);
    send_json(res, 200, completion_body(g, id, created, text, st->result));
    return;
  }
  ++open_streams_;
  auto first = std::make_shared<bool>(true);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, st, g, id, created, first, bid](size_t, httplib::DataSink& sink) {
        auto send = [&](const json& j) {
          const std::string s = "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        if (*first) {
          *first = false;
          if (!send(stream_chunk(g, id, created, nullptr, nullptr, true))) {
            st->gone = true;
            batcher_->cancel(bid);
            return false;
          }
        }
        std::deque<std::string> pieces;
        bool done;
        {
          std::unique_lock<std::mutex> lk(st->mu);
          st->cv.wait(lk, [&] { return st->done || !st->pieces.empty(); });
          pieces.swap(st->pieces);
          done = st->done;
        }
        for (const std::string& p : pieces)
          if (!send(stream_chunk(g, id, created, &p, nullptr, false))) {
            st->gone = true;  // the next piece cancels it; cancel() frees the slot even sooner
            batcher_->cancel(bid);
            return false;
          }
        if (!done) return true;
        const model::BatchResult& r = st->result;
        if (r.finish_reason == "error") {
          send(ApiError(500, "generation failed: " + r.error).body());
        } else {
          send(stream_chunk(g, id, created, nullptr, finish_reason(r), false));
          if (g.include_usage) send(usage_chunk(g, id, created, r));
        }
        const std::string end = "data: [DONE]\n\n";
        sink.write(end.data(), end.size());
        sink.done();
        return true;
      },
      [this, st, bid](bool success) {
        if (!success) {
          st->gone = true;
          batcher_->cancel(bid);
        }
        --open_streams_;
      });
}

void Server::embeddings(const httplib::Request& req, httplib::Response& res) {
  const json j = parse_body(req.body, lim_);
  const EncodeRequest r = parse_embeddings(j, lim_);
  check_model(r.model, embed_id_, encoder_ != nullptr, "embedding");
  std::vector<float> e;
  int64_t tokens = 0;
  batcher_->call([&] {  // on the compute thread, between generation steps
    for (const auto& t : r.input) tokens += int64_t(encoder_->tokenize(t).ids.size());
    e = encoder_->embed(r.input);
  });
  const size_t dim = size_t(encoder_->dim());
  json data = json::array();
  for (size_t i = 0; i < r.input.size(); ++i) {
    json item = {{"object", "embedding"}, {"index", i}};
    if (r.base64) item["embedding"] = base64_floats(e.data() + i * dim, dim);
    else item["embedding"] = std::vector<float>(e.begin() + long(i * dim), e.begin() + long((i + 1) * dim));
    data.push_back(std::move(item));
  }
  send_json(res, 200,
            {{"object", "list"},
             {"data", data},
             {"model", r.model},
             {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

void Server::classify(const httplib::Request& req, httplib::Response& res) {
  const json j = parse_body(req.body, lim_);
  const EncodeRequest r = parse_classify(j, lim_);
  check_model(r.model, embed_id_, encoder_ != nullptr, "classification");
  const auto& labels = encoder_->labels();
  if (labels.empty()) throw ApiError(400, "the model '" + embed_id_ + "' has no classification head", "model");
  std::vector<float> p;
  batcher_->call([&] { p = encoder_->classify(r.input); });
  const size_t L = labels.size();
  const size_t k = r.all_labels ? L : std::min<size_t>(L, size_t(r.top_k.value_or(1)));
  json data = json::array();
  for (size_t i = 0; i < r.input.size(); ++i) {
    std::vector<size_t> order(L);
    for (size_t l = 0; l < L; ++l) order[l] = l;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[i * L + a] > p[i * L + b]; });
    json top = json::array();
    for (size_t t = 0; t < k; ++t) top.push_back({{"label", labels[order[t]]}, {"score", p[i * L + order[t]]}});
    data.push_back(std::move(top));
  }
  send_json(res, 200, {{"object", "list"}, {"data", data}, {"model", r.model}});
}

// Waits for SIGTERM/SIGINT (blocked in every thread, taken here), then drains:
// new generation requests get 503, running ones finish and their streams end,
// then the listener stops.
void Server::shutdown_when_signalled(sigset_t set) {
  int sig = 0;
  sigwait(&set, &sig);
  if (!http_.is_running() && sig == SIGUSR1) return;  // woken by run() after a failed listen
  std::fprintf(stderr, "halfbyte serve: signal %d: finishing running requests\n", sig);
  draining_ = true;
  batcher_->drain();
  while (open_streams_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  http_.stop();
}

int Server::run() {
  const int port = o_.port == 0 ? http_.bind_to_any_port(o_.host) : (http_.bind_to_port(o_.host, o_.port) ? o_.port : -1);
  if (port < 0) throw_error(ErrorKind::Io, "serve: cannot listen on ", o_.host, ":", o_.port, " (address in use?)");
  std::fprintf(stderr, "halfbyte serve: %s on http://%s:%d (%d parallel sequences of %lld tokens)\n",
               llm_id_.c_str(), o_.host.c_str(), port, o_.parallel, static_cast<long long>(llm_->n_ctx()));
  std::fflush(stderr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  std::thread waiter([this, set] { shutdown_when_signalled(set); });
  // HTTP on its own thread; this thread (which loaded the models) runs the batcher
  // loop and every model computation until shutdown.
  bool ok = false;
  std::thread http([&] {
    ok = http_.listen_after_bind();
    batcher_->shutdown();
  });
  batcher_->run();
  http.join();
  if (!draining_) pthread_kill(waiter.native_handle(), SIGUSR1);
  waiter.join();
  std::fprintf(stderr, "halfbyte serve: stopped\n");
  return ok || draining_ ? 0 : 1;
}

int serve(const ServerOptions& opts) {
  // Signals are taken by one thread with sigwait: block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the server
  Server s(opts);
  return s.run();
}

}  // namespace halfbyte::server
