// A zero-shot task end to end: its items tokenized once, scored through a LogprobSource, and the
// accuracies lm-evaluation-harness reports (acc; acc_norm where it reports it), as JSON and as a
// Markdown table (docs/eval.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "eval/loglikelihood.h"
#include "eval/tasks.h"

namespace gfwa::eval {

struct PreparedTask {
  std::string name, file;
  std::vector<Item> items;
  std::vector<TokenRequest> requests;  // every item's choices, item after item
  std::vector<size_t> first;           // items[i]'s first request; first.back() == requests.size()
};

// load_task, then encode_pair for every choice (threads over items). Token ids must be below
// vocab_size (the model's): a larger one is an error naming the task.
PreparedTask prepare_task(const std::string& name, const std::string& file, const Tokenizer& tok, int vocab_size);

struct TaskScore {
  std::string task;
  int64_t items = 0;
  int64_t correct = 0;       // argmax of the log-likelihood is the gold choice
  int64_t correct_norm = 0;  // argmax of log-likelihood / norm_bytes is (counted for every task)
  bool has_norm = false;     // reports_acc_norm(task)
  double acc() const { return items ? double(correct) / double(items) : 0.0; }
  double acc_norm() const { return items ? double(correct_norm) / double(items) : 0.0; }
};

// Correct counts of the items rank, rank + world, rank + 2 world, ... (data-parallel evaluation:
// the ranks' counts add up to the whole task). Ties go to the first choice (numpy's argmax).
TaskScore score_task(const PreparedTask& task, const LogprobSource& src, int rank = 0, int world = 1);

// The choice picked for one item from its choices' log-likelihoods: raw, or divided by norm_bytes.
int pick(const Item& item, const double* ll, bool normalised);

// {"task", "file", "items", "acc", "acc_stderr", ["acc_norm", "acc_norm_stderr"]}; stderr is
// lm-evaluation-harness's sqrt(p (1 - p) / (n - 1)).
nlohmann::json score_json(const TaskScore& s, const std::string& file);

// | task | items | acc | acc_norm | (percent, two decimals; "-" where acc_norm is not reported).
std::string markdown_table(const std::vector<TaskScore>& scores);

}  // namespace gfwa::eval
