#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <vector>

#include <spdlog/spdlog.h>

#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "dist/env.h"
#include "dist/group.h"
#include "eval/zeroshot.h"
#include "model/exported_weights.h"
#include "model/safetensors.h"
#include "train/backend_spec.h"
#include "train/checkpoint.h"
#include "train/checkpointer.h"
#include "train/config_io.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/run_lock.h"
#include "train/schedule.h"
#include "train/signals.h"

namespace gfwa {
namespace fs = std::filesystem;

namespace {

constexpr int kSampleTopK = 40;
constexpr uint64_t kSampleSeedSalt = 0x5a3c9e1f2b7d4c68ull;  // keeps the sampling stream apart from init

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string human_bytes(int64_t b) {
  return b >= (int64_t(1) << 30) ? fmt::format("{:.2f} GiB", double(b) / double(1 << 30))
                                 : fmt::format("{:.0f} MiB", double(b) / double(1 << 20));
}

std::string human_duration(double s) {
  const auto t = int64_t(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t / 60 % 60));
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

// Whether root holds checkpoints, valid or not, including those set aside as invalid.
bool has_checkpoints(const std::string& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 || name.rfind(std::string(kInvalidPrefix) + "step_", 0) == 0) return true;
  }
  return false;
}

// --resume auto: the newest valid checkpoint of this run's own folder, whose newer invalid ones
// are moved aside (by rank 0) so that they can never be mistaken for the run's latest state.
// A fresh start only when the folder holds no checkpoint at all: invalid ones alone are refused.
std::optional<std::string> resume_auto(const std::string& ckpt_root, bool lead) {
  const CheckpointScan scan = scan_checkpoints(ckpt_root);
  if (scan.latest) {
    for (const auto& [dir, problem] : scan.invalid) {
      if (lead) set_aside_invalid(dir, problem);
      else spdlog::warn("skipping checkpoint {}: {}", dir, problem);
    }
    return scan.latest;
  }
  if (scan.invalid.empty() && scan.set_aside.empty()) {
    spdlog::info("resume auto: no checkpoint under {}, starting fresh", ckpt_root);
    return std::nullopt;
  }
  throw std::runtime_error("--resume auto: no valid checkpoint under " + ckpt_root + ", only invalid ones: " +
                           describe_invalid(scan) + ". Nothing was started or changed; restore a valid checkpoint, "
                           "give --resume PATH, or move these away to start afresh");
}

// The checkpoint a --resume value designates; nullopt for a fresh start.
std::optional<std::string> resume_dir(const TrainOptions& opt, const std::string& ckpt_root, bool lead) {
  if (opt.resume.empty()) return std::nullopt;
  if (opt.resume == "auto") return resume_auto(ckpt_root, lead);
  if (fs::exists(opt.resume + "/state.json")) return opt.resume;
  const CheckpointScan scan = scan_checkpoints(opt.resume);
  if (!scan.latest) {
    const std::string invalid = describe_invalid(scan);
    throw std::runtime_error("--resume " + opt.resume + ": no valid checkpoint there" +
                             (invalid.empty() ? std::string() : ", only invalid ones: " + invalid));
  }
  for (const auto& [dir, problem] : scan.invalid) spdlog::warn("skipping checkpoint {}: {}", dir, problem);
  return scan.latest;
}

class Run {
 public:
  Run(const RunConfig& cfg, const TrainOptions& opt)
      : cfg_(cfg), opt_(opt), ckpt_root_(opt.out_dir + "/checkpoints") {}

  int run();

 private:
  void start_or_resume();
  bool read_step_batches();
  void train_step();
  int stop_on_data_error();
  void log_step(double loss, double norm, double lr);
  bool run_eval();  // false on every rank when a val shard could not be read
  void run_tasks();
  void run_sample();
  void save();
  bool lead() const { return rank_ == 0; }

  const RunConfig& cfg_;
  const TrainOptions& opt_;
  const std::string ckpt_root_;
  dist::DistEnv env_;
  int world_ = 1, rank_ = 0;
  std::string backend_kind_;    // train.backend resolved
  bool data_parallel_ = false;  // joined an NCCL group: gradients, losses and decisions are shared
  std::unique_ptr<dist::Group> group_;  // outlives the backend, which uses its communicator
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<TrainLoader> loader_;
  std::unique_ptr<ValLoader> val_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> prompt_;  // the encoded eval.sample_prompt; empty: no samples
  std::vector<eval::PreparedTask> tasks_;  // eval.tasks, read and tokenized once
  std::unique_ptr<MetricsWriter> metrics_;
  std::unique_ptr<Checkpointer> checkpoints_;
  int64_t accum_ = 1, tokens_per_step_ = 0, total_ = 0;
  double flops_per_token_ = 0, peak_ = 0;

  RunProgress progress_;  // what a checkpoint carries besides the model (loader: filled when saving)

  std::string last_saved_dir_;
  std::unique_ptr<RunLock> lock_;               // rank 0: one run per output folder
  std::vector<std::vector<int32_t>> in_, tgt_;  // the step's micro-batches
  std::string data_error_;                      // this rank's failed shard read, if any
  // Logging window.
  double window_time_ = 0;
  int64_t window_steps_ = 0;
};

void Run::start_or_resume() {
  data_parallel_ = dist::wants_data_parallel(env_) && backend_kind_ == "cuda";
  if (data_parallel_) {
    dist::check_id_exchange(env_, cfg_.distributed);
    spdlog::info("rank {} of {} ({} launcher, local rank {}): joining the NCCL group", rank_, world_, env_.launcher,
                 env_.local_rank);
    group_ = dist::join_group(env_, cfg_.distributed);
  } else {
    group_ = std::make_unique<dist::SingleProcess>();
  }
  backend_ = make_backend(backend_spec(cfg_, world_, rank_, data_parallel_));
  if (data_parallel_) backend_->set_communicator(group_->collectives(), size_t(cfg_.distributed.bucket_mb) << 20);
  accum_ = accumulation_steps(cfg_, world_, "train.tokens_per_step");
  tokens_per_step_ = accum_ * cfg_.train.batch_size * cfg_.train.seq_len * world_;
  total_ = total_steps(cfg_.train, tokens_per_step_);
  const int64_t n_params = int64_t(backend_->layout().total());
  flops_per_token_ = flops_per_token(cfg_.model, n_params, cfg_.train.seq_len);
  peak_ = backend_->peak_flops() * world_;

  LoaderOptions lo;
  lo.B = cfg_.train.batch_size;
  lo.T = cfg_.train.seq_len;
  lo.shuffle = cfg_.data.shuffle;
  lo.seed = cfg_.train.seed;
  lo.vocab_size = cfg_.model.vocab_size;
  lo.rank = rank_;
  lo.world = world_;
  lo.pattern = cfg_.data.train;
  loader_ = std::make_unique<TrainLoader>(lo);
  lo.pattern = cfg_.data.val;
  lo.shuffle = false;
  val_ = std::make_unique<ValLoader>(lo);
  const bool samples = cfg_.eval.sample_every > 0 && lead();
  if (samples || !cfg_.eval.tasks.empty()) tokenizer_ = std::make_unique<Tokenizer>(cfg_.data.tokenizer);
  for (const auto& [name, file] : cfg_.eval.tasks)  // every rank scores its share of each task
    tasks_.push_back(eval::prepare_task(name, file, *tokenizer_, cfg_.model.vocab_size));
  if (samples) {
    prompt_ = tokenizer_->encode(cfg_.eval.sample_prompt);
    if (prompt_.empty()) prompt_.push_back(Tokenizer::kEndOfText);
    for (int32_t id : prompt_)
      if (id >= cfg_.model.vocab_size)
        throw std::runtime_error("eval.sample_prompt: token id " + std::to_string(id) +
                                 " is outside the model's vocabulary (model.vocab_size " +
                                 std::to_string(cfg_.model.vocab_size) + ")");
  }

  checkpoints_ = std::make_unique<Checkpointer>(cfg_, ckpt_root_, *group_, data_parallel_);
  const auto from = resume_dir(opt_, ckpt_root_, lead());
  if (from) {
    progress_ = checkpoints_->restore(*from, *backend_);
    loader_->restore(progress_.loader);
    last_saved_dir_ = *from;
    spdlog::info("resuming from {} (step {}, {} tokens seen)", *from, progress_.step, progress_.tokens);
  } else {
    if (opt_.resume.empty() && has_checkpoints(ckpt_root_))
      throw std::runtime_error(opt_.out_dir + " already holds checkpoints of a run: continue it with --resume auto, "
                               "or train into another --out");
    if (cfg_.model.init_from.empty()) {
      backend_->init_params(cfg_.train.seed);
    } else {
      try {
        backend_->set_params(read_exported_weights(cfg_.model.init_from, backend_->layout()));
      } catch (const SafetensorsError& e) {
        throw std::runtime_error(std::string("model.init_from: ") + e.what());
      }
      spdlog::info("parameters from {} (model.init_from)", cfg_.model.init_from);
    }
    progress_.sample_rng.seed(cfg_.train.seed ^ kSampleSeedSalt);
  }
  // A fresh start keeps no earlier records (resume step 0).
  if (lead()) metrics_ = std::make_unique<MetricsWriter>(opt_.out_dir + "/metrics.jsonl", progress_.step);

  spdlog::info("backend {} | {:.2f}M parameters | {} tokens/step = {} x {} tokens x {} micro-batches x {} processes | "
               "{} steps",
               backend_->name(), double(n_params) / 1e6, tokens_per_step_, cfg_.train.batch_size, cfg_.train.seq_len,
               accum_, world_, total_);
}

// Every micro-batch of the next step, read before any compute, so that a shard that cannot be read
// stops all ranks at the same step boundary. Returns false on every rank when a read failed on any
// (this rank's message in data_error_), with the loader back at the step's start.
bool Run::read_step_batches() {
  const TrainLoader::Position start = loader_->position();
  in_.resize(size_t(accum_));
  tgt_.resize(size_t(accum_));
  try {
    for (int64_t m = 0; m < accum_; ++m) loader_->next(in_[size_t(m)], tgt_[size_t(m)]);
  } catch (const ShardReadError& e) {
    data_error_ = e.what();
  }
  if (!dist::any_rank(*group_, !data_error_.empty())) return true;
  loader_->seek(start);
  return false;
}

void Run::train_step() {
  const auto t0 = Clock::now();
  backend_->zero_grad();
  const float scale = 1.0f / float(accum_);
  for (int64_t m = 0; m < accum_; ++m) {  // queued: the host's work on the next overlaps this one on the device
    if (data_parallel_ && m + 1 == accum_) backend_->reduce_grads_in_next_backward();
    backend_->queue_forward_backward(in_[size_t(m)].data(), tgt_[size_t(m)].data(), cfg_.train.batch_size,
                                     cfg_.train.seq_len, scale);
  }
  const double loss_sum = backend_->take_losses();
  // The norm is already global (averaged gradients); the loss is averaged here, and one rank's
  // non-finite value makes every rank skip the update.
  const double norm = backend_->grad_norm();
  double shared[2] = {loss_sum / double(accum_), std::isfinite(loss_sum) && std::isfinite(norm) ? 0.0 : 1.0};
  group_->sum(shared, 2);
  const double loss = shared[0] / double(world_);
  const double lr = lr_at(cfg_.schedule, cfg_.optimizer.lr, progress_.step, total_);
  const bool finite = shared[1] == 0.0 && std::isfinite(loss) && std::isfinite(norm);
  if (finite) {
    apply_update(*backend_, cfg_.optimizer, cfg_.schedule, progress_.step, total_, norm, ++progress_.updates);
    progress_.bad_streak = 0;
  } else {
    ++progress_.bad_streak;
    spdlog::warn("step {}: non-finite loss {} or grad norm {}; update skipped ({} in a row, limit {})",
                 progress_.step + 1, loss, norm, progress_.bad_streak, cfg_.train.max_bad_steps);
  }
  ++progress_.step;
  progress_.tokens += tokens_per_step_;
  window_time_ += seconds_since(t0);
  ++window_steps_;
  if (progress_.bad_streak >= cfg_.train.max_bad_steps)
    throw std::runtime_error("stopping at step " + std::to_string(progress_.step) + " after " +
                             std::to_string(progress_.bad_streak) +
                             " non-finite steps in a row (train.max_bad_steps); the last good checkpoint is " +
                             (last_saved_dir_.empty() ? std::string("none") : last_saved_dir_));
  if (lead() && (progress_.step % cfg_.logging.every == 0 || progress_.step == total_)) log_step(loss, norm, lr);
}

void Run::log_step(double loss, double norm, double lr) {
  const double step_time = window_time_ / double(window_steps_);
  const double tok_s = double(tokens_per_step_) / step_time;
  const int64_t mem = backend_->memory_in_use();
  nlohmann::json rec = {
      {"type", "train"},   {"step", progress_.step},     {"loss", loss},          {"lr", lr},
      {"grad_norm", norm}, {"tokens", progress_.tokens}, {"tokens_per_s", tok_s}, {"memory_bytes", mem}};
  std::string mfu_text;
  if (peak_ > 0) {
    const double mfu = flops_per_token_ * tok_s / peak_;
    rec["mfu"] = mfu;
    mfu_text = fmt::format(" | MFU {:.1f}%", 100 * mfu);
  }
  metrics_->write(rec);
  spdlog::info("step {}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f} | {:.0f} tok/s{} | mem {} | ETA {}",
               progress_.step, total_, loss, lr, norm, tok_s, mfu_text, human_bytes(mem),
               human_duration(step_time * double(total_ - progress_.step)));
  window_time_ = 0;
  window_steps_ = 0;
}

bool Run::run_eval() {
  const auto t0 = Clock::now();
  EvalResult r;
  try {
    r = evaluate(*backend_, *val_, cfg_.train.batch_size, cfg_.train.seq_len, cfg_.eval.batches);
  } catch (const ShardReadError& e) {
    data_error_ = e.what();
  }
  if (dist::any_rank(*group_, !data_error_.empty())) return false;
  if (world_ > 1) {  // every rank evaluated its own slice of the same number of batches
    double v[2] = {r.loss, r.bits_per_byte};
    group_->sum(v, 2);
    r.loss = v[0] / world_;
    r.bits_per_byte = v[1] / world_;
    r.perplexity = std::exp(r.loss);
    r.tokens *= world_;
  }
  if (!lead()) return true;
  metrics_->write({{"type", "eval"}, {"step", progress_.step}, {"val_loss", r.loss}, {"val_ppl", r.perplexity},
                   {"val_bpb", r.bits_per_byte}, {"val_tokens", r.tokens}});
  spdlog::info("eval step {} | val loss {:.4f} | perplexity {:.2f} | bits/byte {:.4f} | {} tokens in {:.1f}s",
               progress_.step, r.loss, r.perplexity, r.bits_per_byte, r.tokens, seconds_since(t0));
  return true;
}

// Zero-shot accuracy on eval.tasks: each rank scores every world-th item, the counts are summed.
void Run::run_tasks() {
  const auto t0 = Clock::now();
  const eval::LogprobSource src = eval::backend_source(*backend_, cfg_.train.batch_size, cfg_.train.seq_len);
  std::vector<eval::TaskScore> scores;
  std::vector<double> counts;
  for (const eval::PreparedTask& t : tasks_) {
    scores.push_back(eval::score_task(t, src, rank_, world_));
    counts.insert(counts.end(), {double(scores.back().items), double(scores.back().correct),
                                 double(scores.back().correct_norm)});
  }
  group_->sum(counts.data(), int(counts.size()));
  if (!lead()) return;
  nlohmann::json rec = {{"type", "tasks"}, {"step", progress_.step}};
  std::string line;
  for (size_t i = 0; i < scores.size(); ++i) {
    eval::TaskScore& s = scores[i];
    s.items = int64_t(counts[3 * i]);
    s.correct = int64_t(counts[3 * i + 1]);
    s.correct_norm = int64_t(counts[3 * i + 2]);
    rec[s.task + "_acc"] = s.acc();
    line += fmt::format(" | {} acc {:.2f}", s.task, 100 * s.acc());
    if (s.has_norm) {
      rec[s.task + "_acc_norm"] = s.acc_norm();
      line += fmt::format(" acc_norm {:.2f}", 100 * s.acc_norm());
    }
  }
  metrics_->write(rec);
  spdlog::info("tasks step {}{} ({:.1f}s)", progress_.step, line, seconds_since(t0));
}

void Run::run_sample() {
  const auto ids = sample_tokens(*backend_, prompt_, cfg_.eval.sample_tokens, cfg_.train.seq_len,
                                 tokenizer_->vocab_size(), kSampleTopK, progress_.sample_rng);
  const std::string text = tokenizer_->decode(prompt_) + tokenizer_->decode(ids);
  metrics_->write({{"type", "sample"}, {"step", progress_.step}, {"text", text}});
  spdlog::info("sample step {}:\n{}", progress_.step, text);
}

void Run::save() {
  progress_.loader = loader_->state();
  last_saved_dir_ = checkpoints_->save(*backend_, progress_, total_);
}

// A shard that cannot be read mid-run: stop as a signal stop does, with a checkpoint of the last
// complete step, but with a status of its own, so that requeue loops (which restart on 75) do not
// restart into the same broken file.
int Run::stop_on_data_error() {
  save();
  if (!data_error_.empty())
    spdlog::error("stopping at step {}: {}; checkpoint {} written; fix or remove the shard, then resume with "
                  "--resume auto (exit status {})", progress_.step, data_error_, last_saved_dir_, kExitDataError);
  else
    spdlog::error("stopping at step {}: another rank could not read a shard (see its log); checkpoint {} written "
                  "(exit status {})", progress_.step, last_saved_dir_, kExitDataError);
  return kExitDataError;
}

int Run::run() {
  env_ = dist::read_dist_env();
  rank_ = env_.rank;
  world_ = env_.world;
  // Checked before anything about the launcher and before any rank waits for another: a cpu run of
  // several processes is refused here (ConfigError naming train.backend).
  backend_kind_ = backend_spec(cfg_, world_, rank_, false).kind;
  if (lead()) {
    lock_ = std::make_unique<RunLock>(opt_.out_dir);  // before anything is written into the folder
    setup_logging(opt_.out_dir + "/train.log", cfg_.logging.level);
    if (!lock_->stale_holder().empty())
      spdlog::warn("{}: the previous run ({}) ended without releasing it (killed or crashed)", lock_->path(),
                   lock_->stale_holder());
  } else {  // other ranks: warnings and errors on the console only
    fs::create_directories(opt_.out_dir);
    const bool quieter = spdlog::level::from_str(cfg_.logging.level) > spdlog::level::warn;
    setup_logging("", quieter ? cfg_.logging.level : "warn");
  }
  const std::string resolved = config_to_json(cfg_).dump(2);
  spdlog::info("resolved config:\n{}", resolved);
  start_or_resume();  // first: a refused resume must not overwrite the saved config
  if (lead()) {
    std::ofstream f(opt_.out_dir + "/config.json");
    f << resolved << '\n';
    if (!f) throw std::runtime_error("cannot write " + opt_.out_dir + "/config.json");
  }
  if (progress_.step >= total_) {
    spdlog::info("nothing to do: the run is at step {} of {}", progress_.step, total_);
    return 0;
  }
  StopSignals stop;
  while (progress_.step < total_) {
    if (!read_step_batches()) return stop_on_data_error();
    train_step();
    const bool last = progress_.step == total_;
    if (last || (cfg_.eval.every > 0 && progress_.step % cfg_.eval.every == 0)) {
      if (!run_eval()) return stop_on_data_error();
      if (!tasks_.empty()) run_tasks();
    }
    if (!prompt_.empty() && (last || progress_.step % cfg_.eval.sample_every == 0)) run_sample();
    // A signal on any rank stops every rank after the same step.
    const bool stop = dist::any_rank(*group_, StopSignals::requested());
    if (last || stop || (cfg_.checkpoint.every > 0 && progress_.step % cfg_.checkpoint.every == 0)) save();
    if (stop && !last) {
      if (StopSignals::requested())
        spdlog::warn("stopped by signal {} at step {}; resume with --resume auto (exit status {})",
                     StopSignals::signal_number(), progress_.step, kExitPreempted);
      else
        spdlog::warn("stopped at step {}: another rank received a stop signal (exit status {})", progress_.step,
                     kExitPreempted);
      return kExitPreempted;
    }
  }
  return 0;
}

}  // namespace

int train(const RunConfig& cfg, const TrainOptions& opt) {
  Run run(cfg, opt);
  return run.run();
}

}  // namespace gfwa
