// The zero-shot tasks of the GatedFWA paper, read from each task's public release file and turned
// into multiple-choice items the way lm-evaluation-harness prompts them (docs/eval.md lists the
// files, fields and prompts). Scoring is in loglikelihood.h and zeroshot.h.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "eval/jsonl.h"

namespace gfwa::eval {

struct Choice {
  std::string context;       // what the model is conditioned on
  std::string continuation;  // what is scored: log p(continuation | context)
  size_t norm_bytes = 0;     // acc_norm divides the log-likelihood by this (UTF-8 bytes of the choice text)
};

struct Item {
  std::vector<Choice> choices;
  int gold = 0;  // index of the correct choice
  Where where;   // file and line it came from
};

// hellaswag, piqa, arc_easy, arc_challenge, winogrande, openbookqa, copa, boolq.
const std::vector<std::string>& task_names();
bool is_task_name(const std::string& name);
// "name1|name2|..." for messages.
std::string task_name_list();

// Whether lm-evaluation-harness reports acc_norm for the task (hellaswag, piqa, arc_*, openbookqa);
// the others report acc only (WinoGrande's choices share one continuation; BoolQ's are yes/no).
bool reports_acc_norm(const std::string& task);

// Reads the task's release file (PIQA also reads its labels file; see piqa_labels_path). Throws
// std::runtime_error naming the file and line of the first malformed record.
std::vector<Item> load_task(const std::string& task, const std::string& path);

// PIQA keeps labels apart: valid.jsonl -> valid-labels.lst beside it.
std::string piqa_labels_path(const std::string& jsonl_path);

}  // namespace gfwa::eval
