// `gfwa tokenize`: text files in, GPT-2 token shards out (train_NNNNNN.bin / val_NNNNNN.bin).
// Every document is preceded by <|endoftext|> (llm.c's convention). Documents are tokenized on
// all cores; the output does not depend on the thread count. Shards are staged in a temp folder
// inside --out and renamed into place only when everything succeeded; stale shards of an earlier
// run are then removed, so the folder holds exactly this run's output.
#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cxxopts.hpp>
#include <exception>
#include <filesystem>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "data/documents.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "io/files.h"
#include "io/pid_alive.h"

namespace fs = std::filesystem;

namespace gfwa {
namespace {

constexpr size_t kBatchBytes = 64u << 20;   // text read per round of parallel work
constexpr size_t kPieceBytes = 1u << 20;    // documents are cut into pieces of about this size
constexpr int kMaxThreads = 1024;           // more would only cost memory (one stack and cache each)
constexpr const char* kStagingPrefix = ".tokenize.tmp";  // + the writer's pid

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::string kind_of(const fs::file_status& st) {
  switch (st.type()) {
    case fs::file_type::directory: return "a directory";
    case fs::file_type::fifo: return "a FIFO";
    case fs::file_type::character:
    case fs::file_type::block: return "a device";
    case fs::file_type::socket: return "a socket";
    default: return "not a file";
  }
}

// Files named by arguments (paths or globs), in argument order, each glob sorted.
std::vector<std::string> expand_inputs(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const std::string& a : args) {
    if (!has_glob_chars(a)) {
      std::error_code ec;
      const fs::file_status st = fs::status(a, ec);
      if (!fs::exists(st)) throw std::runtime_error(a + ": no such file");
      if (!fs::is_regular_file(st)) throw std::runtime_error(a + ": not a regular file (" + kind_of(st) + ")");
      out.push_back(a);
      continue;
    }
    glob_t g{};
    const int rc = ::glob(a.c_str(), 0, nullptr, &g);
    std::vector<std::string> hits;
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i)
      if (fs::is_regular_file(g.gl_pathv[i])) hits.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    if (hits.empty()) throw std::runtime_error("no files match '" + a + "'");
    std::sort(hits.begin(), hits.end());
    out.insert(out.end(), hits.begin(), hits.end());
  }
  return out;
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

struct SplitStats {
  int64_t docs = 0, bytes = 0, tokens = 0, shards = 0;
};

// One split's output: tokens accumulate into shards of exactly shard_tokens (the last one may be
// shorter), written into the staging folder. The UTF-8 byte count of a shard is the bytes its
// tokens decode to, <|endoftext|> excluded, so a document cut between shards is counted exactly.
class ShardSink {
 public:
  ShardSink(std::string split, const fs::path& staging, int64_t shard_tokens, const Tokenizer& tok)
      : split_(std::move(split)), staging_(staging), cap_(shard_tokens), tok_(tok) {
    for (int32_t id = 0; id < tok.vocab_size(); ++id)
      len_.push_back(id == Tokenizer::kEndOfText ? 0 : uint32_t(tok.token_bytes(id).size()));
  }
  void begin_document(int64_t bytes) {
    ++stats_.docs;
    stats_.bytes += bytes;
    append(&kEot, 1);
  }
  void append(const int32_t* t, size_t n) {
    stats_.tokens += int64_t(n);
    while (n > 0) {
      const size_t take = std::min(n, size_t(cap_) - buf_.size());
      for (size_t i = 0; i < take; ++i) shard_bytes_ += len_[size_t(t[i])];
      buf_.insert(buf_.end(), t, t + take);
      t += take, n -= take;
      if (buf_.size() == size_t(cap_)) flush();
    }
  }
  void flush() {
    if (buf_.empty()) return;
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%06lld.bin", split_.c_str(), static_cast<long long>(stats_.shards));
    write_shard((staging_ / name).string(), buf_.data(), int64_t(buf_.size()), shard_bytes_, tok_.vocab_size());
    written_.push_back(name);
    ++stats_.shards;
    buf_.clear();
    shard_bytes_ = 0;
  }
  const SplitStats& stats() const { return stats_; }
  const std::vector<std::string>& written() const { return written_; }

 private:
  static constexpr int32_t kEot = Tokenizer::kEndOfText;
  std::string split_;
  fs::path staging_;
  int64_t cap_;
  const Tokenizer& tok_;
  std::vector<uint32_t> len_;
  std::vector<int32_t> buf_;
  uint64_t shard_bytes_ = 0;
  SplitStats stats_;
  std::vector<std::string> written_;
};

// A progress bar on stderr when it is a terminal: fraction of input bytes done and MB/s.
class Progress {
 public:
  explicit Progress(int64_t total) : total_(std::max<int64_t>(total, 1)), tty_(::isatty(2)) {}
  void show(int64_t done, bool final = false) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!final && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double frac = std::min(1.0, double(done) / double(total_));
    const double s = std::chrono::duration<double>(now - start_).count();
    const int width = 30, filled = int(frac * width);
    std::fprintf(stderr, "\r[%s%s] %5.1f%%  %.1f / %.1f MB  %.1f MB/s ", std::string(size_t(filled), '#').c_str(),
                 std::string(size_t(width - filled), '.').c_str(), 100 * frac, double(done) / 1e6,
                 double(total_) / 1e6, s > 0 ? double(done) / 1e6 / s : 0.0);
    if (final) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

struct Document {
  std::string_view text;
  bool val;
  size_t first_piece, pieces;
};

// Tokenizes pieces on `threads` threads (each with its own cache), reporting bytes done.
void encode_parallel(const Tokenizer& tok, const std::vector<std::string_view>& pieces,
                     std::vector<std::vector<int32_t>>& out, int threads, int64_t done_before, Progress& progress) {
  out.assign(pieces.size(), {});
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0};
  int running = threads;  // guarded by mu
  std::mutex mu;
  std::condition_variable finished;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  auto work = [&](int w) {
    try {
      EncodeCache cache;
      for (size_t i; (i = next++) < pieces.size();) {
        tok.encode_append(pieces[i], out[i], cache);
        done += int64_t(pieces[i].size());
      }
    } catch (...) {
      errors[size_t(w)] = std::current_exception();
      next = pieces.size();
    }
    std::lock_guard<std::mutex> lock(mu);
    if (--running == 0) finished.notify_one();
  };
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w) {
    try {
      pool.emplace_back(work, w);
    } catch (const std::system_error& e) {
      // A thread that cannot start (a process or memory limit) must not leave joinable threads
      // behind (std::terminate): the started ones stop and are joined, then the failure is reported.
      next = pieces.size();
      for (auto& t : pool) t.join();
      throw std::runtime_error("cannot start tokenizer thread " + std::to_string(w + 1) + " of " +
                               std::to_string(threads) + " (" + e.what() + "); give a smaller --threads");
    }
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    while (!finished.wait_for(lock, std::chrono::milliseconds(100), [&] { return running == 0; }))
      progress.show(done_before + done);
  }
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Staging folders of runs that died (killed, or aborted before this cleanup existed).
void remove_dead_staging(const fs::path& out_dir) {
  std::error_code ec;
  const std::string prefix = kStagingPrefix;
  for (const auto& e : fs::directory_iterator(out_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (!pid_alive(pid)) fs::remove_all(e.path(), ec);
  }
}

// Removes the staging folder on every exit; after a commit it is already empty.
struct StagingGuard {
  fs::path dir;
  ~StagingGuard() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  cxxopts::Options o("gfwa tokenize",
                     "Tokenize text files (GPT-2 BPE) into llm.c-style token shards; see docs/data.md.");
  o.positional_help("INPUT...");
  o.add_options()
      ("out", "output folder for train_NNNNNN.bin / val_NNNNNN.bin", cxxopts::value<std::string>())
      ("val", "files or globs (comma-separated, repeatable) that form the val split",
       cxxopts::value<std::vector<std::string>>()->default_value(""))
      ("val-fraction", "send each document to val when its content hash falls below this fraction",
       cxxopts::value<double>()->default_value("0"))
      ("shard-tokens", "tokens per shard", cxxopts::value<int64_t>()->default_value("100000000"))
      ("doc-sep", "a line that separates documents inside a file (e.g. % for fortunes); "
                  "default: one file is one document", cxxopts::value<std::string>()->default_value(""))
      ("tokenizer", "folder with r50k_base.tiktoken", cxxopts::value<std::string>()->default_value("data/tokenizer"))
      ("threads", "worker threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("inputs", "text files or globs", cxxopts::value<std::vector<std::string>>())
      ("h,help", "show this help");
  o.parse_positional({"inputs"});
  const auto a = o.parse(argc, argv);
  if (a.count("help")) {
    std::printf("%s\n", o.help().c_str());
    return 0;
  }
  if (!a.count("out")) throw std::runtime_error("--out is required");
  const fs::path out_dir = a["out"].as<std::string>();
  const int64_t shard_tokens = a["shard-tokens"].as<int64_t>();
  if (shard_tokens <= 0 || shard_tokens > INT32_MAX)
    throw std::runtime_error("--shard-tokens " + std::to_string(shard_tokens) + " is outside [1, 2^31)");
  const double val_fraction = a["val-fraction"].as<double>();
  if (!(val_fraction >= 0 && val_fraction < 1))
    throw std::runtime_error("--val-fraction " + std::to_string(val_fraction) + " is outside [0, 1)");
  std::vector<std::string> val_args;
  for (const auto& v : a["val"].as<std::vector<std::string>>())
    if (!v.empty()) val_args.push_back(v);
  if (!val_args.empty() && val_fraction > 0) throw std::runtime_error("give --val or --val-fraction, not both");
  const std::string doc_sep = a["doc-sep"].as<std::string>();
  int threads = a["threads"].as<int>();
  if (threads < 0 || threads > kMaxThreads)
    throw std::runtime_error("--threads " + std::to_string(threads) + " is outside [0, " + std::to_string(kMaxThreads) +
                             "] (0: one per core)");
  if (threads == 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));

  const std::vector<std::string> val_files = expand_inputs(val_args);
  std::vector<std::string> files = expand_inputs(a.count("inputs") ? a["inputs"].as<std::vector<std::string>>()
                                                                   : std::vector<std::string>{});
  files.insert(files.end(), val_files.begin(), val_files.end());
  {  // drop repeats, keep first occurrence
    std::set<std::string> seen;
    std::vector<std::string> unique;
    for (auto& f : files)
      if (seen.insert(fs::weakly_canonical(f).string()).second) unique.push_back(f);
    files.swap(unique);
  }
  if (files.empty()) throw std::runtime_error("no input files (give INPUT... or --val)");
  std::set<std::string> val_set;
  for (auto& f : val_files) val_set.insert(fs::weakly_canonical(f).string());
  int64_t total_bytes = 0;
  for (auto& f : files) total_bytes += int64_t(fs::file_size(f));

  const Tokenizer tok(a["tokenizer"].as<std::string>());
  fs::create_directories(out_dir);
  remove_dead_staging(out_dir);
  StagingGuard staging{out_dir / (kStagingPrefix + std::to_string(::getpid()))};
  fs::remove_all(staging.dir);
  fs::create_directories(staging.dir);
  ShardSink train("train", staging.dir, shard_tokens, tok), val("val", staging.dir, shard_tokens, tok);

  Progress progress(total_bytes);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t done = 0;
  double encode_seconds = 0;
  for (size_t next_file = 0; next_file < files.size();) {
    // One round: whole files up to kBatchBytes of text (at least one file).
    std::vector<std::string> texts;
    std::vector<bool> text_is_val;
    size_t batch = 0;
    while (next_file < files.size() && (texts.empty() || batch < kBatchBytes)) {
      texts.push_back(read_file(files[next_file]));
      text_is_val.push_back(val_set.count(fs::weakly_canonical(files[next_file]).string()) > 0);
      batch += texts.back().size();
      ++next_file;
    }
    std::vector<Document> docs;
    std::vector<std::string_view> pieces;
    for (size_t f = 0; f < texts.size(); ++f) {
      for (std::string_view d : split_documents(texts[f], doc_sep)) {
        const bool is_val = text_is_val[f] || (val_fraction > 0 && in_val_split(d, val_fraction));
        const auto cut = cut_for_parallel(d, kPieceBytes);
        docs.push_back({d, is_val, pieces.size(), cut.size()});
        pieces.insert(pieces.end(), cut.begin(), cut.end());
      }
    }
    std::vector<std::vector<int32_t>> encoded;
    const auto e0 = std::chrono::steady_clock::now();
    encode_parallel(tok, pieces, encoded, threads, done, progress);
    encode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
    for (const Document& d : docs) {
      ShardSink& sink = d.val ? val : train;
      sink.begin_document(int64_t(d.text.size()));
      for (size_t p = d.first_piece; p < d.first_piece + d.pieces; ++p) sink.append(encoded[p].data(), encoded[p].size());
    }
    done += int64_t(batch);
  }
  train.flush();
  val.flush();
  progress.show(done, true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (train.stats().docs + val.stats().docs == 0) throw std::runtime_error("the inputs hold no documents");

  // Commit: move this run's shards into place, then drop shards of earlier runs.
  std::set<std::string> fresh;
  for (const ShardSink* s : {&train, &val})
    for (const std::string& name : s->written()) {
      fs::rename(staging.dir / name, out_dir / name);
      fresh.insert(name);
    }
  const std::regex shard_name("(train|val)_[0-9]{6}\\.bin");
  for (const auto& e : fs::directory_iterator(out_dir)) {
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, shard_name) && !fresh.count(name)) fs::remove(e.path());
  }

  std::printf("tokenize: %zu files, %s bytes in %.2f s; encoding %.2f s: %.1f MB/s on %d threads\n", files.size(),
              with_commas(total_bytes).c_str(), seconds, encode_seconds, double(total_bytes) / 1e6 / encode_seconds,
              threads);
  for (const auto* s : {&train, &val}) {
    const SplitStats& st = s->stats();
    std::printf("  %-5s %8s documents %14s bytes %13s tokens %4lld shards\n", s == &train ? "train" : "val",
                with_commas(st.docs).c_str(), with_commas(st.bytes).c_str(), with_commas(st.tokens).c_str(),
                static_cast<long long>(st.shards));
  }
  std::printf("  output: %s\n", out_dir.string().c_str());
  return 0;
}

}  // namespace gfwa
