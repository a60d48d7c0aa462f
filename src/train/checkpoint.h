// Checkpoints: one directory per step, root/step_00001234/, holding
//   config.json     the resolved run configuration plus the tokenizer id
//   model.bin       fp32 parameters in ParamLayout order (raw little-endian floats)
//   optimizer.bin   AdamW first moments m, then second moments v (fp32, same order)
//   state.json      step, counters, RNG and data-loader states, the byte size and SHA-256 of every
//                   other file, and a SHA-256 of its own content ("self_sha256")
// Data-parallel runs add one part per rank (docs/distributed.md): rank-RRRRR-of-WWWWW.json (that
// rank's state, e.g. its data-loader position, self-checksummed) and, when it has one,
// rank-RRRRR-of-WWWWW.bin (its ZeRO-1 optimizer shard: m then v). Their state.json says
// "rank_parts": W, and the checkpoint is valid only when every rank's part is there and intact.
// optimizer.bin is then absent when the optimizer state lives in the rank parts.
// A checkpoint is written under a temporary name, every file and the directory fsync'ed, then
// renamed into place, so a crash or a full disk never leaves a half-written step_* directory and
// never touches the checkpoints already there.
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gfwa {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CheckpointData {
  nlohmann::json config;   // written to config.json
  nlohmann::json state;    // written to state.json (the "files" and "self_sha256" keys are added)
  std::vector<float> params;
  std::vector<float> adam_m, adam_v;  // same size as params, or both empty: no optimizer.bin
};

struct RankPart {
  nlohmann::json state;
  std::vector<float> adam_m, adam_v;  // same size (maybe 0: no .bin file)
};

// "step_00001234" (at least 8 digits).
std::string checkpoint_dir_name(int64_t step);

// Writes root/step_<step> atomically and returns its path; an existing directory of the same step is
// replaced. Throws CheckpointError naming the path and the reason; on failure nothing new is left.
std::string save_checkpoint(const std::string& root, int64_t step, const CheckpointData& data);

// A multi-rank save, in steps the caller separates by agreements across ranks (every rank needs
// the temporary name, so rank 0's pid is shared):
//   rank 0:     begin_checkpoint(root, tmp), tmp = checkpoint_temp_dir(root, step, rank 0's pid)
//   every rank: write_rank_part(tmp, rank, world, part); rank 0 also write_checkpoint_files(tmp, data)
//   rank 0:     commit_checkpoint(root, step, tmp) once every rank succeeded, else discard_checkpoint(tmp)
// save_checkpoint is begin + write_checkpoint_files + commit for a single process.
std::string checkpoint_temp_dir(const std::string& root, int64_t step, long pid);
void begin_checkpoint(const std::string& root, const std::string& tmp);
void write_checkpoint_files(const std::string& tmp, const CheckpointData& data);
void write_rank_part(const std::string& tmp, int rank, int world, const RankPart& part);
std::string commit_checkpoint(const std::string& root, int64_t step, const std::string& tmp);
void discard_checkpoint(const std::string& tmp);

// Reads and verifies one rank's part of a checkpoint; throws CheckpointError naming the file.
RankPart load_rank_part(const std::string& dir, int rank, int world);

// Reads and verifies (sizes, checksums) one checkpoint directory; throws CheckpointError naming the
// directory and the problem.
CheckpointData load_checkpoint(const std::string& dir);

// Verifies a checkpoint directory without keeping its contents; returns the problem, or "" if valid.
std::string checkpoint_problem(const std::string& dir);

// The newest valid step_* directory under root, skipping (with a warning that names the directory and
// the problem) incomplete or corrupted ones; nullopt when there is none.
std::optional<std::string> find_latest_valid(const std::string& root);

// An invalid checkpoint is never deleted for being invalid: it is renamed to
// root/invalid-step_NNNNNNNN (then -2, -3, ... when taken), which no listing of checkpoints
// matches, with a warning naming both paths and the problem. Returns the new path.
constexpr const char* kInvalidPrefix = "invalid-";
std::string set_aside_invalid(const std::string& dir, const std::string& problem);

// What a folder of checkpoints holds, read newest first up to the first valid step_* directory.
struct CheckpointScan {
  std::optional<std::string> latest;                        // the newest valid one
  std::vector<std::pair<std::string, std::string>> invalid;  // newer invalid ones, newest first: (dir, problem)
  std::vector<std::string> set_aside;                        // invalid-step_* directories found
};
CheckpointScan scan_checkpoints(const std::string& root);

// One line for a refusal: every invalid checkpoint of the scan, each with its problem.
std::string describe_invalid(const CheckpointScan& scan);

// Keeps the newest keep_last (at least 1) *valid* step_* directories under root and those whose
// step is a multiple of keep_every (when > 0); deletes the other ones. Validity is checked newest
// first (checkpoint_problem) until keep_last valid ones are found, except for directories listed
// in `verified` (known valid: written or checked by this process); those found valid are added.
// An invalid one among them is set aside (set_aside_invalid) and not counted, so a corrupt
// checkpoint never displaces a good one.
void prune_checkpoints(const std::string& root, int keep_last, int keep_every, std::set<std::string>& verified);
void prune_checkpoints(const std::string& root, int keep_last, int keep_every);

// Test-only fault injection: once save_checkpoint has written `after_bytes` more bytes, the next
// write fails with ENOSPC (Fault::fail) or blocks forever (Fault::stall, to be killed). Negative
// after_bytes disables the fault.
enum class WriteFault { fail, stall };
void inject_checkpoint_write_fault(int64_t after_bytes, WriteFault kind = WriteFault::fail);

}  // namespace gfwa
