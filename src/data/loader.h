// Data loaders over token shards (shard.h). A window is T+1 consecutive tokens of one shard,
// windows tile each shard with stride T (llm.c's layout); inputs = w[0..T), targets = w[1..T].
//
// TrainLoader: an endless stream of epochs. Each epoch visits every shard once, in an order
// shuffled from (seed, epoch), and every window of a shard once, in an order shuffled from
// (seed, epoch, shard) (no shuffling: sorted shards, windows in file order). Consecutive groups
// of world*B windows of the stream are global batches; rank r takes windows [r*B, (r+1)*B) of
// each. A batch may span shards and epochs, so nothing is dropped. The position is one number,
// the windows consumed in the current epoch, so state()/restore() are exact and small.
// Shards are opened one at a time when first read in an epoch and read with pread (shard.h); real FineWeb shards
// (100M tokens) are never all loaded.
//
// ValLoader: windows in file order over the sorted shards; full global batches only (every rank
// gets B windows each step and the same number of steps); the last partial global batch, fewer
// than world*B windows, is not read. total_tokens() / total_utf8_bytes() come from the shard
// headers: bits per byte = mean loss per token (nats) / ln 2 * total_tokens / total_utf8_bytes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/shard.h"

namespace gfwa {

struct LoaderOptions {
  std::string pattern;  // glob of shard files, e.g. "data/austen/train_*.bin"
  int B;
  int T;
  int rank = 0;
  int world = 1;
  bool shuffle = true;
  uint64_t seed = 0;
  int vocab_size = 50257;
};

// The shards a glob names, sorted by path, headers checked; throws on an empty glob.
struct ShardSet {
  explicit ShardSet(const LoaderOptions& opt);
  std::vector<ShardInfo> shards;
  std::vector<int64_t> windows;  // per shard: (tokens - 1) / T
  int64_t total_windows = 0;
};

class TrainLoader {
 public:
  explicit TrainLoader(const LoaderOptions& opt);
  ~TrainLoader();

  void next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets);  // each resized to B*T
  // {epoch, cursor, shard_order, seed, shuffle, B, T, world, shards: [{name, tokens}]}. restore()
  // requires the same T, seed, shuffle and shards (base names and token counts); B and world may
  // differ (the cursor counts windows of the whole stream), the stream then continues from there.
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);
  // Where the stream stands; seek() goes back there, e.g. after a ShardReadError part-way through
  // the micro-batches of a step.
  struct Position {
    int64_t epoch, cursor;
  };
  Position position() const { return {epoch_, cursor_}; }
  void seek(Position p) { epoch_ = p.epoch, cursor_ = p.cursor; }
  int64_t epoch() const { return epoch_; }
  int64_t windows_per_epoch() const { return set_.total_windows; }
  const std::vector<ShardInfo>& shards() const { return set_.shards; }

 private:
  struct Layout {
    std::vector<int32_t> order;  // shard indices in visiting order
    std::vector<int64_t> end;    // cumulative windows after each visited shard
  };
  std::vector<int32_t> shard_order(int64_t epoch) const;
  const Layout& layout(int64_t epoch);
  void read_window(int64_t epoch, int64_t index, int32_t* inputs, int32_t* targets);

  LoaderOptions opt_;
  ShardSet set_;
  int64_t epoch_ = 0, cursor_ = 0;
  std::map<int64_t, Layout> layouts_;  // the current epoch and maybe the next
  std::unique_ptr<ShardReader> open_;
  int32_t open_index_ = -1;
  int64_t perm_epoch_ = -1;
  std::vector<int32_t> perm_;  // window order of the open shard in perm_epoch_
};

class ValLoader {
 public:
  explicit ValLoader(const LoaderOptions& opt);
  ~ValLoader();
  void reset();
  bool next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets);  // false at the end
  int64_t total_tokens() const;      // tokens in all val shards
  int64_t total_utf8_bytes() const;  // their UTF-8 bytes; 0 when a shard does not record it
  int64_t batches() const { return batches_; }  // steps per pass, the same on every rank

 private:
  LoaderOptions opt_;
  ShardSet set_;
  std::vector<int64_t> end_window_;  // cumulative windows up to and including each shard
  int64_t batches_ = 0, batch_ = 0;
  std::unique_ptr<ShardReader> open_;
  int32_t open_index_ = -1;
};

}  // namespace gfwa
