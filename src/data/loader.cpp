#include "data/loader.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <stdexcept>

#include "data/rng.h"

namespace gfwa {
namespace {

constexpr uint64_t kShardOrderStream = ~uint64_t(0);

uint64_t stream_seed(uint64_t seed, int64_t epoch, uint64_t stream) {
  return mix64(mix64(mix64(seed) ^ uint64_t(epoch)) ^ stream);
}

void check_options(const LoaderOptions& o) {
  auto bad = [&](const std::string& key, long long v) {
    throw std::runtime_error("loader for '" + o.pattern + "': " + key + " = " + std::to_string(v) + " is invalid");
  };
  if (o.B <= 0) bad("B", o.B);
  if (o.T <= 0) bad("T", o.T);
  if (o.world <= 0) bad("world", o.world);
  if (o.rank < 0 || o.rank >= o.world) bad("rank", o.rank);
  if (o.vocab_size <= 0) bad("vocab_size", o.vocab_size);
}

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), GLOB_ERR, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  if (rc == GLOB_NOMATCH || (rc == 0 && out.empty())) throw std::runtime_error("no files match '" + pattern + "'");
  if (rc != 0) throw std::runtime_error("cannot expand '" + pattern + "' (unreadable directory?)");
  std::sort(out.begin(), out.end());
  return out;
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// Window w covers tokens [w*T, w*T+T]: inputs are its first T tokens, targets its last T.
void split_window(const ShardReader& shard, int64_t w, int T, int32_t* in, int32_t* tgt) {
  shard.copy(w * T, T, in);
  shard.copy(w * T + 1, T, tgt);
}

// Opens shard s of the set in place of the open one. Any failure is a ShardReadError: the file
// passed the header check when the loader was built, so it changed since or holds bad ids.
void open_shard(std::unique_ptr<ShardReader>& open, int32_t& open_index, const ShardSet& set, int32_t s, int vocab) {
  open.reset();
  open_index = -1;
  try {
    open = std::make_unique<ShardReader>(set.shards[size_t(s)].path, vocab);
  } catch (const ShardReadError&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw ShardReadError(e.what());
  }
  open_index = s;
}

}  // namespace

ShardSet::ShardSet(const LoaderOptions& opt) {
  check_options(opt);
  for (const std::string& path : expand_glob(opt.pattern)) {
    shards.push_back(read_shard_header(path));
    windows.push_back((shards.back().tokens - 1) / opt.T);
    total_windows += windows.back();
  }
  if (total_windows == 0)
    throw std::runtime_error("'" + opt.pattern + "': no shard holds T+1 = " + std::to_string(opt.T + 1) + " tokens");
}

// ---------------------------------------------------------------------------------------------

TrainLoader::TrainLoader(const LoaderOptions& opt) : opt_(opt), set_(opt) {}
TrainLoader::~TrainLoader() = default;

std::vector<int32_t> TrainLoader::shard_order(int64_t epoch) const {
  std::vector<int32_t> order(set_.shards.size());
  std::iota(order.begin(), order.end(), 0);
  if (opt_.shuffle) shuffle_with_seed(order, stream_seed(opt_.seed, epoch, kShardOrderStream));
  return order;
}

const TrainLoader::Layout& TrainLoader::layout(int64_t epoch) {
  auto it = layouts_.find(epoch);
  if (it != layouts_.end()) return it->second;
  Layout l;
  l.order = shard_order(epoch);
  int64_t sum = 0;
  for (int32_t s : l.order) l.end.push_back(sum += set_.windows[s]);
  layouts_.erase(layouts_.begin(), layouts_.lower_bound(epoch_));  // keep the current epoch onwards
  return layouts_.emplace(epoch, std::move(l)).first->second;
}

void TrainLoader::read_window(int64_t epoch, int64_t index, int32_t* inputs, int32_t* targets) {
  const Layout& l = layout(epoch);
  const size_t pos = size_t(std::upper_bound(l.end.begin(), l.end.end(), index) - l.end.begin());
  const int32_t s = l.order[pos];
  int64_t w = index - (pos ? l.end[pos - 1] : 0);
  if (s != open_index_) {
    open_shard(open_, open_index_, set_, s, opt_.vocab_size);
    perm_epoch_ = -1;
  }
  if (opt_.shuffle) {
    if (perm_epoch_ != epoch) {
      perm_.resize(size_t(set_.windows[s]));
      std::iota(perm_.begin(), perm_.end(), 0);
      shuffle_with_seed(perm_, stream_seed(opt_.seed, epoch, uint64_t(s)));
      perm_epoch_ = epoch;
    }
    w = perm_[size_t(w)];
  }
  split_window(*open_, w, opt_.T, inputs, targets);
}

void TrainLoader::next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
  const size_t T = size_t(opt_.T);
  inputs.resize(size_t(opt_.B) * T);
  targets.resize(size_t(opt_.B) * T);
  const int64_t per_epoch = set_.total_windows;
  for (int b = 0; b < opt_.B; ++b) {
    int64_t e = epoch_, c = cursor_ + int64_t(opt_.rank) * opt_.B + b;
    e += c / per_epoch;
    c %= per_epoch;
    read_window(e, c, inputs.data() + b * T, targets.data() + b * T);
  }
  cursor_ += int64_t(opt_.world) * opt_.B;
  epoch_ += cursor_ / per_epoch;
  cursor_ %= per_epoch;
}

nlohmann::json TrainLoader::state() const {
  nlohmann::json shards = nlohmann::json::array();
  for (const ShardInfo& s : set_.shards) shards.push_back({{"name", base_name(s.path)}, {"tokens", s.tokens}});
  return {{"epoch", epoch_}, {"cursor", cursor_}, {"shard_order", shard_order(epoch_)}, {"seed", opt_.seed},
          {"shuffle", opt_.shuffle}, {"B", opt_.B}, {"T", opt_.T}, {"world", opt_.world}, {"shards", shards}};
}

void TrainLoader::restore(const nlohmann::json& st) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("loader state does not fit '" + opt_.pattern + "': " + what);
  };
  for (const char* key : {"epoch", "cursor", "shard_order", "seed", "shuffle", "T", "shards"})
    if (!st.contains(key)) fail(std::string("missing key '") + key + "'");
  if (st["T"].get<int>() != opt_.T) fail("T " + st["T"].dump() + " != " + std::to_string(opt_.T));
  if (st["seed"].get<uint64_t>() != opt_.seed) fail("seed " + st["seed"].dump() + " != " + std::to_string(opt_.seed));
  if (st["shuffle"].get<bool>() != opt_.shuffle) fail("shuffle " + st["shuffle"].dump() + " differs");
  const auto& shards = st["shards"];
  if (shards.size() != set_.shards.size())
    fail(std::to_string(shards.size()) + " shards saved, " + std::to_string(set_.shards.size()) + " found");
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = base_name(set_.shards[i].path);
    if (shards[i]["name"].get<std::string>() != name || shards[i]["tokens"].get<int64_t>() != set_.shards[i].tokens)
      fail("shard " + std::to_string(i) + " was " + shards[i].dump() + ", found " + name + " with " +
           std::to_string(set_.shards[i].tokens) + " tokens");
  }
  const int64_t epoch = st["epoch"].get<int64_t>(), cursor = st["cursor"].get<int64_t>();
  if (epoch < 0) fail("epoch " + std::to_string(epoch) + " is negative");
  if (cursor < 0 || cursor >= set_.total_windows)
    fail("cursor " + std::to_string(cursor) + " is outside [0, " + std::to_string(set_.total_windows) + ")");
  if (st["shard_order"] != nlohmann::json(shard_order(epoch)))
    fail("shard_order " + st["shard_order"].dump() + " differs from this build's order for epoch " +
         std::to_string(epoch));
  epoch_ = epoch;
  cursor_ = cursor;
  layouts_.clear();
}

// ---------------------------------------------------------------------------------------------

ValLoader::ValLoader(const LoaderOptions& opt) : opt_(opt), set_(opt) {
  int64_t sum = 0;
  for (int64_t w : set_.windows) end_window_.push_back(sum += w);
  const int64_t global = int64_t(opt_.world) * opt_.B;
  batches_ = set_.total_windows / global;
  if (batches_ == 0)
    throw std::runtime_error("'" + opt_.pattern + "': " + std::to_string(set_.total_windows) + " windows of T+1 = " +
                             std::to_string(opt_.T + 1) + " tokens, fewer than one global batch (world*B = " +
                             std::to_string(global) + ")");
}
ValLoader::~ValLoader() = default;

void ValLoader::reset() { batch_ = 0; }

bool ValLoader::next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
  if (batch_ >= batches_) return false;
  const size_t T = size_t(opt_.T);
  inputs.resize(size_t(opt_.B) * T);
  targets.resize(size_t(opt_.B) * T);
  const int64_t first = (batch_ * opt_.world + opt_.rank) * int64_t(opt_.B);
  for (int b = 0; b < opt_.B; ++b) {
    const int64_t g = first + b;
    const int32_t s = int32_t(std::upper_bound(end_window_.begin(), end_window_.end(), g) - end_window_.begin());
    if (s != open_index_) open_shard(open_, open_index_, set_, s, opt_.vocab_size);
    split_window(*open_, g - (s ? end_window_[s - 1] : 0), opt_.T, inputs.data() + b * T, targets.data() + b * T);
  }
  ++batch_;
  return true;
}

int64_t ValLoader::total_tokens() const {
  int64_t n = 0;
  for (const ShardInfo& s : set_.shards) n += s.tokens;
  return n;
}

int64_t ValLoader::total_utf8_bytes() const {
  int64_t n = 0;
  for (const ShardInfo& s : set_.shards) {
    if (s.utf8_bytes == 0) return 0;
    n += int64_t(s.utf8_bytes);
  }
  return n;
}

}  // namespace gfwa
