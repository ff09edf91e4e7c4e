// Continuous batching: many generation requests advance together, one forward
// pass per step over every active sequence (Model::eval_batch), so the weights
// are read once per step rather than once per stream. New requests join between
// steps; long prompts are fed in chunks so that running streams keep flowing.
//
//   auto m = Model::load(path, {.n_seq = 8});
//   Batcher b(*m);
//   BatchRequest r;
//   r.prompt = m->tokenize("Once upon a time");
//   r.on_piece = [](std::string_view s) { std::cout << s; return true; };
//   r.on_done = [](const BatchResult& res) { ... };
//   b.submit(std::move(r));
//
// Each request runs in its own KV-cache slot (LoadOptions::n_seq slots); its
// tokens do not depend on what else is in the batch (every row of a step's
// matmuls is computed as it would be alone), so greedy output is the same alone
// or beside others.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "halfbyte/model/model.hpp"

namespace halfbyte::model {

struct BatchResult {
  // "stop": end-of-generation token or a stop string; "length": max_tokens or the
  // context was reached; "cancelled": cancel() or on_piece returned false;
  // "error": see `error`.
  std::string finish_reason;
  std::string error;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int64_t cached_tokens = 0;         // prompt tokens copied from another sequence's cache
  double queued_seconds = 0.0;       // submit() to the start of its prefill
  double first_token_seconds = 0.0;  // submit() to its first sampled token
  double total_seconds = 0.0;        // submit() to the end
};

struct BatchRequest {
  std::vector<int32_t> prompt;  // token ids, BOS and chat markers included
  SamplingParams params;
  // Called on the batcher's thread with each piece of text (whole UTF-8
  // characters, never part of a stop string); return false to cancel. Keep it short:
  // every stream waits while it runs.
  std::function<bool(std::string_view piece)> on_piece;
  // Called exactly once, on the batcher's thread, when the request ends.
  std::function<void(const BatchResult&)> on_done;
};

struct BatcherOptions {
  int64_t max_batch_tokens = 256;  // tokens per forward pass (decode rows + prompt chunks)
  int64_t prefill_chunk = 128;     // prompt tokens per request per step
  // A prompt that starts with at least this many tokens another running sequence
  // already holds (a chat template's system message, a shared document) copies
  // their keys and values instead of computing them; a request arriving together
  // with one that shares its start waits a step for it. 0: off.
  int64_t min_prefix_reuse = 8;
  // true: the batcher starts a worker thread for its loop. false: the caller runs
  // the loop with run() on a thread of its choice, e.g. the one that does the
  // process's other model work. OpenMP keeps one pool of threads per thread that
  // runs parallel work, and while another thread's pool lives this one's wakes
  // through the kernel on every parallel region (measured: SmolLM2 decode 3x
  // slower on 2 cores). Model::load releases its pool (release_thread_pool()), so
  // the worker thread is fine unless other threads compute meanwhile.
  bool own_thread = true;
};

struct BatcherStats {
  int64_t queued = 0, active = 0;  // now
  int64_t steps = 0, batch_tokens = 0, generated_tokens = 0, prompt_tokens = 0;  // since start
  int64_t cached_tokens = 0;  // prompt tokens copied instead of computed, since start
};

class Batcher {
 public:
  // Serves up to model.n_seq() requests at once; starts its worker thread. The
  // model must outlive the batcher and not be used by anything else meanwhile.
  explicit Batcher(Model& model, BatcherOptions opts = {});
  ~Batcher();  // cancels what is left (on_done "cancelled") and joins the worker
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues a request (thread-safe) and returns its id. Throws
  // Error(InvalidArgument) for an empty prompt, one that leaves no room in the
  // context, a token id outside the vocabulary, or max_tokens < 0, and
  // Error(Runtime) once drain() has begun.
  uint64_t submit(BatchRequest r);
  // Ends a queued or running request at the next step (thread-safe; unknown or
  // finished ids are ignored).
  void cancel(uint64_t id);
  // Refuses new requests, waits until every accepted one has finished.
  void drain();
  // Runs fn on the batcher's loop thread between two steps and waits for it (its
  // exception is rethrown here). For other model work that should not run beside
  // the batch on other threads (e.g. an encoder's embeddings in a server).
  void call(const std::function<void()>& fn);
  // The loop, for own_thread = false: returns after shutdown().
  void run();
  // Cancels what is left (on_done "cancelled") and ends the loop; called by the
  // destructor.
  void shutdown();

  BatcherStats stats() const;
  int slots() const noexcept { return n_slots_; }

 private:
  struct Slot;
  struct Pending {
    uint64_t id;
    BatchRequest req;
    double t_submit;
  };
  void loop();
  void step();
  void admit();
  void finish(Slot& s, const std::string& reason, const std::string& error = {});
  void reuse_prefixes();
  bool wait_for_shared_prefix(const Slot& s, const std::vector<const Slot*>& feeding) const;

  Model& model_;
  BatcherOptions opts_;
  int n_slots_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<BatchToken> batch_;
  std::vector<float> logits_;

  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Pending> queue_;
  std::set<uint64_t> cancelled_;
  struct Job {
    const std::function<void()>* fn;
    std::exception_ptr error;
    bool done = false;
  };
  std::deque<Job*> jobs_;
  bool stopped_ = false;  // the loop has returned
  uint64_t next_id_ = 1;
  int64_t active_ = 0;
  bool stopping_ = false, draining_ = false;
  BatcherStats stats_;
  std::thread worker_;
};

}  // namespace halfbyte::model
