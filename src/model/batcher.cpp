// The continuous batcher: a worker thread that admits queued requests into free
// KV-cache slots and runs one Model::eval_batch per step over all of them.
#include "halfbyte/model/batcher.hpp"

#include <algorithm>
#include <chrono>
#include <exception>

#include "halfbyte/core/error.hpp"
#include "halfbyte/model/tokenizer.hpp"
#include "model/sampler.hpp"
#include "model/text_stream.hpp"

namespace halfbyte::model {
namespace {

// Length of the common start of a and b, at most `limit`.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b, size_t limit) {
  size_t n = std::min({a.size(), b.size(), limit});
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct Batcher::Slot {
  int index = 0;
  bool busy = false;
  uint64_t id = 0;
  BatchRequest req;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<TextStream> text;
  std::vector<int32_t> ids;  // prompt, then generated tokens (the sampler's history)
  size_t fed = 0;            // tokens of ids in the KV cache
  int64_t generated = 0;
  BatchResult result;
  double t_submit = 0.0;
  bool first = true;
  int64_t logits_row = -1;   // this step's row of logits (eval_batch returns them in batch order), if any
};

Batcher::Batcher(Model& model, BatcherOptions opts) : model_(model), opts_(opts), n_slots_(model.n_seq()) {
  if (opts_.max_batch_tokens < 1) throw_invalid("batcher: max_batch_tokens must be >= 1");
  if (opts_.prefill_chunk < 1) throw_invalid("batcher: prefill_chunk must be >= 1");
  for (int i = 0; i < n_slots_; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->index = i;
  }
  if (opts_.own_thread) worker_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() {
  shutdown();
  if (worker_.joinable()) worker_.join();
}

void Batcher::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

void Batcher::run() {
  if (opts_.own_thread) throw_invalid("batcher: run() is for own_thread = false (this one has its own thread)");
  loop();
}

void Batcher::call(const std::function<void()>& fn) {
  Job job{&fn, nullptr, false};
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (stopping_ || stopped_) throw_error(ErrorKind::Runtime, "the batcher is shutting down");
    jobs_.push_back(&job);
    cv_.notify_all();
    idle_cv_.wait(lk, [&] { return job.done; });
  }
  if (job.error) std::rethrow_exception(job.error);
}

uint64_t Batcher::submit(BatchRequest r) {
  const int64_t V = model_.config().n_vocab;
  if (r.prompt.empty()) throw_invalid("the prompt has no tokens");
  if (int64_t(r.prompt.size()) >= model_.n_ctx())
    throw_invalid("the prompt has ", r.prompt.size(), " tokens; the context holds ", model_.n_ctx(),
                  " (prompt + at least one generated token)");
  for (int32_t t : r.prompt)
    if (t < 0 || t >= V) throw_invalid("token id ", t, " is outside the vocabulary [0, ", V, ")");
  if (r.params.max_tokens < 0) throw_invalid("max_tokens must be >= 0, got ", r.params.max_tokens);
  Sampler check(r.params);  // throws InvalidArgument for sampling settings out of range
  std::lock_guard<std::mutex> lk(mu_);
  if (draining_ || stopping_) throw_error(ErrorKind::Runtime, "the batcher is shutting down");
  const uint64_t id = next_id_++;
  queue_.push_back({id, std::move(r), now()});
  cv_.notify_all();
  return id;
}

void Batcher::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  cancelled_.insert(id);
  cv_.notify_all();
}

void Batcher::drain() {
  std::unique_lock<std::mutex> lk(mu_);
  draining_ = true;
  idle_cv_.wait(lk, [&] { return queue_.empty() && active_ == 0; });
}

BatcherStats Batcher::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  BatcherStats s = stats_;
  s.queued = int64_t(queue_.size());
  s.active = active_;
  return s;
}

void Batcher::finish(Slot& s, const std::string& reason, const std::string& error) {
  if (s.text && reason != "error") {
    const std::string rest = s.text->finish();
    if (!rest.empty() && s.req.on_piece) s.req.on_piece(rest);
  }
  s.result.finish_reason = reason;
  s.result.error = error;
  s.result.prompt_tokens = int64_t(s.req.prompt.size());
  s.result.completion_tokens = s.generated;
  s.result.total_seconds = now() - s.t_submit;
  auto done = std::move(s.req.on_done);
  const BatchResult res = s.result;
  model_.release_slot(s.index);  // an idle server holds no KV cache
  s.busy = false;
  s.req = {};
  s.sampler.reset();
  s.text.reset();
  s.ids.clear();
  {
    std::lock_guard<std::mutex> lk(mu_);
    --active_;
  }
  if (done) done(res);
}

// Moves queued requests into free slots (called with mu_ held).
void Batcher::admit() {
  for (auto& sp : slots_) {
    if (queue_.empty()) break;
    Slot& s = *sp;
    if (s.busy) continue;
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    s.busy = true;
    s.id = p.id;
    s.req = std::move(p.req);
    s.t_submit = p.t_submit;
    s.result = {};
    s.result.queued_seconds = now() - p.t_submit;
    s.sampler = std::make_unique<Sampler>(s.req.params);
    s.text = std::make_unique<TextStream>(s.req.params.stop);
    s.ids = s.req.prompt;
    s.fed = 0;
    s.generated = 0;
    s.first = true;
    ++active_;
  }
}

void Batcher::loop() {
  for (;;) {
    std::vector<uint64_t> to_cancel;
    std::vector<Pending> dropped;
    std::deque<Job*> jobs;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty() || active_ > 0 || !jobs_.empty(); });
      jobs.swap(jobs_);
      if (stopping_) {
        dropped.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
        queue_.clear();
      } else {
        // Cancelled requests still in the queue end here, without a slot.
        for (auto it = queue_.begin(); it != queue_.end();)
          if (cancelled_.count(it->id)) {
            cancelled_.erase(it->id);
            dropped.push_back(std::move(*it));
            it = queue_.erase(it);
          } else {
            ++it;
          }
        admit();
      }
      for (auto& sp : slots_)
        if (sp->busy && (stopping_ || cancelled_.count(sp->id))) to_cancel.push_back(sp->id);
      cancelled_.clear();  // ids not found belong to finished requests
    }
    for (Job* j : jobs) {
      try {
        (*j->fn)();
      } catch (...) {
        j->error = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(mu_);
      j->done = true;
      idle_cv_.notify_all();
    }
    for (Pending& p : dropped) {
      BatchResult r;
      r.finish_reason = "cancelled";
      r.prompt_tokens = int64_t(p.req.prompt.size());
      r.total_seconds = now() - p.t_submit;
      if (p.req.on_done) p.req.on_done(r);
    }
    for (auto& sp : slots_)
      if (sp->busy && std::find(to_cancel.begin(), to_cancel.end(), sp->id) != to_cancel.end())
        finish(*sp, "cancelled");
    bool any = false;
    for (auto& sp : slots_) any = any || sp->busy;
    if (any) {
      try {
        step();
      } catch (const std::exception& e) {  // a callback threw: end what runs, keep serving
        for (auto& sp : slots_)
          if (sp->busy) finish(*sp, "error", e.what());
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    if (queue_.empty() && active_ == 0) idle_cv_.notify_all();
    if (stopping_ && active_ == 0 && queue_.empty()) {
      // Jobs that came in after the last round fail rather than wait forever.
      for (Job* j : jobs_) {
        j->error = std::make_exception_ptr(Error(ErrorKind::Runtime, "the batcher is shutting down"));
        j->done = true;
      }
      jobs_.clear();
      stopped_ = true;
      idle_cv_.notify_all();
      return;
    }
  }
}

// Prefilling slots copy the longest start of their prompt that another slot
// already holds in its cache (positions [0, fed) of that slot are ids[0, fed)).
// The last prompt token is always computed: its logits are needed.
void Batcher::reuse_prefixes() {
  if (opts_.min_prefix_reuse <= 0) return;
  int64_t copied = 0;
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (!s.busy || s.fed + 1 >= s.req.prompt.size()) continue;
    size_t best = s.fed;
    const Slot* src = nullptr;
    for (auto& op : slots_) {
      const Slot& o = *op;
      if (&o == &s || !o.busy) continue;
      const size_t n = common_prefix(s.req.prompt, o.ids, std::min(o.fed, s.req.prompt.size() - 1));
      if (n > best) best = n, src = &o;
    }
    if (src && int64_t(best - s.fed) >= opts_.min_prefix_reuse) {
      model_.copy_slot_prefix(src->index, s.index, int64_t(best));
      s.result.cached_tokens += int64_t(best - s.fed);
      copied += int64_t(best - s.fed);
      s.fed = best;
    }
  }
  if (copied) {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.cached_tokens += copied;
  }
}

// True if a slot being fed this step will compute at least min_prefix_reuse more
// of s's prompt than s has: s waits and copies them next step.
bool Batcher::wait_for_shared_prefix(const Slot& s, const std::vector<const Slot*>& feeding) const {
  if (opts_.min_prefix_reuse <= 0) return false;
  for (const Slot* o : feeding) {
    const size_t n = common_prefix(s.req.prompt, o->req.prompt, s.req.prompt.size() - 1);
    if (int64_t(n) - int64_t(s.fed) >= opts_.min_prefix_reuse && o->fed < n) return true;
  }
  return false;
}

void Batcher::step() {
  const Tokenizer& tok = model_.tokenizer();
  const int64_t V = model_.config().n_vocab, n_ctx = model_.n_ctx();
  batch_.clear();
  int64_t n_rows = 0;  // logits rows so far
  // Requests that want no tokens end at once.
  for (auto& sp : slots_)
    if (sp->busy && sp->req.params.max_tokens == 0) finish(*sp, "length");
  // Decoding slots first (one token each: the last one sampled), then prompt
  // chunks in slot order within what is left of the step's budget.
  for (auto& sp : slots_) {
    Slot& s = *sp;
    s.logits_row = -1;
    if (!s.busy || s.fed < s.req.prompt.size()) continue;
    s.logits_row = n_rows++;
    batch_.push_back({s.ids.back(), int32_t(s.index), int64_t(s.fed), true});
    ++s.fed;
  }
  reuse_prefixes();
  int64_t budget = opts_.max_batch_tokens - int64_t(batch_.size());
  int64_t n_prompt = 0;
  std::vector<const Slot*> feeding;
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (!s.busy || s.fed >= s.req.prompt.size() || budget <= 0) continue;
    if (wait_for_shared_prefix(s, feeding)) continue;
    feeding.push_back(&s);
    const int64_t n = std::min({int64_t(s.req.prompt.size() - s.fed), opts_.prefill_chunk, budget});
    for (int64_t i = 0; i < n; ++i) {
      const bool last = s.fed + 1 == s.req.prompt.size();
      if (last) s.logits_row = n_rows++;
      batch_.push_back({s.ids[s.fed], int32_t(s.index), int64_t(s.fed), last});
      ++s.fed;
    }
    budget -= n;
    n_prompt += n;
  }
  if (batch_.empty()) return;
  try {
    model_.eval_batch(batch_, logits_);
  } catch (const std::exception& e) {
    for (auto& sp : slots_)
      if (sp->busy) finish(*sp, "error", e.what());
    return;
  }
  int64_t sampled = 0;
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (!s.busy || s.logits_row < 0) continue;
    float* lg = logits_.data() + s.logits_row * V;
    const int32_t t = s.sampler->sample(lg, V, s.ids);
    ++sampled;
    if (s.first) {
      s.result.first_token_seconds = now() - s.t_submit;
      s.first = false;
    }
    if (tok.is_eog(t)) {
      finish(s, "stop");
      continue;
    }
    s.ids.push_back(t);
    ++s.generated;
    const std::string piece = s.text->push(tok.token_to_piece(t));
    if (!piece.empty() && s.req.on_piece && !s.req.on_piece(piece)) {
      finish(s, "cancelled");
      continue;
    }
    if (s.text->stopped()) finish(s, "stop");
    else if (s.generated >= s.req.params.max_tokens || int64_t(s.fed) + 1 > n_ctx) finish(s, "length");
  }
  std::lock_guard<std::mutex> lk(mu_);
  ++stats_.steps;
  stats_.batch_tokens += int64_t(batch_.size());
  stats_.prompt_tokens += n_prompt;
  stats_.generated_tokens += sampled;
}

}  // namespace halfbyte::model
