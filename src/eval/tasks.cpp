#include "eval/tasks.h"

#include <algorithm>
#include <stdexcept>

namespace gfwa::eval {
namespace {

using nlohmann::json;

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  for (size_t at; (at = s.find(from, i)) != std::string::npos; i = at + from.size()) out += s.substr(i, at - i) + to;
  return out + s.substr(i);
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }
char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c; }

// Python's str.capitalize() on ASCII: first character upper case, the rest lower case.
std::string capitalize(std::string s) {
  for (size_t i = 0; i < s.size(); ++i) s[i] = i == 0 ? ascii_upper(s[i]) : ascii_lower(s[i]);
  return s;
}

// lm-evaluation-harness's HellaSwag clean-up of the WikiHow artifacts: strip, " [title]" -> ". ",
// drop every "[...]" (shortest match, not across lines), then "  " -> " " (one pass).
std::string hellaswag_clean(const std::string& text) {
  const std::string s = replace_all(strip(text), " [title]", ". ");
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '[') {
      const size_t close = s.find_first_of("]\n", i + 1);
      if (close != std::string::npos && s[close] == ']') {
        i = close;
        continue;
      }
    }
    out += s[i];
  }
  return replace_all(out, "  ", " ");
}

Choice answer(const std::string& context, const std::string& choice) {
  return {context, " " + choice, choice.size()};
}

void check_gold(const Item& item, const char* field_name, int raw) {
  if (item.gold < 0 || item.gold >= int(item.choices.size()))
    fail_at(item.where, std::string("field '") + field_name + "' is " + std::to_string(raw) + ", outside the " +
                            std::to_string(item.choices.size()) + " choices");
}

std::vector<Item> hellaswag(const std::string& path) {
  std::vector<Item> items;
  for_each_jsonl(path, [&](const json& j, const Where& w) {
    const std::string ctx = string_field(j, "ctx_a", w) + " " + capitalize(string_field(j, "ctx_b", w));
    const std::string query = hellaswag_clean(string_field(j, "activity_label", w) + ": " + ctx);
    const json& endings = field(j, "endings", w);
    if (!endings.is_array() || endings.size() < 2) fail_at(w, "field 'endings' must be a list of at least 2 strings");
    Item item{{}, int_field(j, "label", w), w};
    for (const json& e : endings) {
      if (!e.is_string()) fail_at(w, "field 'endings' must hold strings only");
      item.choices.push_back(answer(query, hellaswag_clean(e.get<std::string>())));
    }
    check_gold(item, "label", item.gold);
    items.push_back(std::move(item));
  });
  return items;
}

std::vector<Item> piqa(const std::string& path) {
  std::vector<Item> items;
  for_each_jsonl(path, [&](const json& j, const Where& w) {
    const std::string ctx = "Question: " + string_field(j, "goal", w) + "\nAnswer:";
    items.push_back({{answer(ctx, string_field(j, "sol1", w)), answer(ctx, string_field(j, "sol2", w))}, 0, w});
  });
  const std::string labels_path = piqa_labels_path(path);
  const auto labels = read_lines(labels_path);
  if (labels.size() != items.size())
    throw std::runtime_error(labels_path + ": " + std::to_string(labels.size()) + " labels for the " +
                             std::to_string(items.size()) + " questions of " + path);
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string s = strip(labels[i].first);
    if (s != "0" && s != "1") fail_at({labels_path, labels[i].second}, "label must be 0 or 1 (got '" + s + "')");
    items[i].gold = s == "1";
  }
  return items;
}

// ARC and OpenBookQA: {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}.
std::vector<Item> science_qa(const std::string& path, bool question_prefix) {
  std::vector<Item> items;
  for_each_jsonl(path, [&](const json& j, const Where& w) {
    const json& q = field(j, "question", w);
    if (!q.is_object()) fail_at(w, "field 'question' must be an object with 'stem' and 'choices'");
    const std::string stem = string_field(q, "stem", w);
    const std::string ctx = question_prefix ? "Question: " + stem + "\nAnswer:" : stem;
    const json& choices = field(q, "choices", w);
    if (!choices.is_array() || choices.size() < 2) fail_at(w, "field 'question.choices' must list at least 2 choices");
    const std::string key = strip(string_field(j, "answerKey", w));
    Item item{{}, -1, w};
    for (const json& c : choices) {
      if (!c.is_object()) fail_at(w, "each of 'question.choices' must be an object with 'text' and 'label'");
      if (string_field(c, "label", w) == key) item.gold = int(item.choices.size());
      item.choices.push_back(answer(ctx, string_field(c, "text", w)));
    }
    if (item.gold < 0) fail_at(w, "answerKey '" + key + "' is none of the choices' labels");
    items.push_back(std::move(item));
  });
  return items;
}

// lm-evaluation-harness's partial scoring: each option replaces the blank and ends the context;
// the continuation is the rest of the sentence, the same for both options.
std::vector<Item> winogrande(const std::string& path) {
  std::vector<Item> items;
  for_each_jsonl(path, [&](const json& j, const Where& w) {
    const std::string s = string_field(j, "sentence", w);
    const size_t blank = s.find('_');
    if (blank == std::string::npos) fail_at(w, "field 'sentence' has no '_' blank");
    const std::string rest = " " + strip(s.substr(blank + 1));
    Item item{{}, 0, w};
    for (const char* opt : {"option1", "option2"})
      item.choices.push_back({s.substr(0, blank) + string_field(j, opt, w), rest, rest.size() - 1});
    const int raw = int_field(j, "answer", w);
    item.gold = raw - 1;  // "1" | "2"
    check_gold(item, "answer", raw);
    items.push_back(std::move(item));
  });
  return items;
}

std::vector<Item> copa(const std::string& path) {
  std::vector<Item> items;
  for_each_jsonl(path, [&](const json& j, const Where& w) {
    const std::string premise = strip(string_field(j, "premise", w));
    const std::string question = string_field(j, "question", w);
    if (question != "cause" && question != "effect")
      fail_at(w, "field 'question' must be \"cause\" or \"effect\" (got \"" + question + "\")");
    if (premise.empty()) fail_at(w, "field 'premise' is empty");
    // The premise's final period gives way to the connective; the choice continues the sentence.
    const std::string ctx = premise.substr(0, premise.size() - 1) + (question == "cause" ? " because" : " therefore");
    Item item{{}, int_field(j, "label", w), w};
    for (const char* opt : {"choice1", "choice2"}) {
      std::string c = string_field(j, opt, w);
      if (!c.empty()) c[0] = ascii_lower(c[0]);
      item.choices.push_back(answer(ctx, c));
    }
    check_gold(item, "label", item.gold);
    items.push_back(std::move(item));
  });
  return items;
}

std::vector<Item> boolq(const std::string& path) {
  std::vector<Item> items;
  for_each_jsonl(path, [&](const json& j, const Where& w) {
    const std::string ctx = string_field(j, "passage", w) + "\nQuestion: " + string_field(j, "question", w) + "?\nAnswer:";
    // SuperGLUE's val.jsonl says "label", the original dev.jsonl "answer".
    const bool yes = bool_field(j, j.contains("label") ? "label" : "answer", w);
    items.push_back({{answer(ctx, "no"), answer(ctx, "yes")}, yes ? 1 : 0, w});
  });
  return items;
}

}  // namespace

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"hellaswag",  "piqa",       "arc_easy", "arc_challenge",
                                                 "winogrande", "openbookqa", "copa",     "boolq"};
  return names;
}

bool is_task_name(const std::string& name) {
  const auto& n = task_names();
  return std::find(n.begin(), n.end(), name) != n.end();
}

std::string task_name_list() {
  std::string s;
  for (const auto& n : task_names()) s += (s.empty() ? "" : "|") + n;
  return s;
}

bool reports_acc_norm(const std::string& task) {
  return task != "winogrande" && task != "copa" && task != "boolq";
}

std::string piqa_labels_path(const std::string& jsonl_path) {
  const std::string ext = ".jsonl";
  const bool has_ext = jsonl_path.size() > ext.size() && jsonl_path.compare(jsonl_path.size() - ext.size(), ext.size(), ext) == 0;
  return (has_ext ? jsonl_path.substr(0, jsonl_path.size() - ext.size()) : jsonl_path) + "-labels.lst";
}

std::vector<Item> load_task(const std::string& task, const std::string& path) {
  if (task == "hellaswag") return hellaswag(path);
  if (task == "piqa") return piqa(path);
  if (task == "arc_easy" || task == "arc_challenge") return science_qa(path, true);
  if (task == "openbookqa") return science_qa(path, false);
  if (task == "winogrande") return winogrande(path);
  if (task == "copa") return copa(path);
  if (task == "boolq") return boolq(path);
  throw std::runtime_error("unknown task '" + task + "' (expected one of " + task_name_list() + ")");
}

}  // namespace gfwa::eval
