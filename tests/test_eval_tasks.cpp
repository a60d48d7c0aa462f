// The task readers: each release format's fields become lm-evaluation-harness's prompts, and every
// malformed record is an error naming the file and line.
#include <string>

#include <gtest/gtest.h>

#include "eval/tasks.h"
#include "test_data_util.h"

namespace gfwa::eval {
namespace {

std::string data(const std::string& rel) { return std::string(GFWA_SOURCE_DIR) + "/tests/data/eval/" + rel; }

std::vector<std::string> continuations(const Item& item) {
  std::vector<std::string> out;
  for (const Choice& c : item.choices) out.push_back(c.continuation);
  return out;
}

// The error message of load_task, or "" when it succeeds.
std::string load_error(const std::string& task, const std::string& path) {
  try {
    load_task(task, path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(EvalTasks, HellaSwagPromptIsCleanedActivityLabelAndContext) {
  const auto items = load_task("hellaswag", data("hellaswag/hellaswag_val.jsonl"));
  ASSERT_EQ(items.size(), 4u);
  // ctx_b capitalised like Python's str.capitalize (rest lower case).
  EXPECT_EQ(items[1].choices[0].context, "Clean and jerk: A lady walks to a barbell. She bends");
  EXPECT_EQ(items[1].gold, 1);
  // " [title]" -> ". ", "[header]" and "[step]" dropped, double spaces collapsed, string label.
  EXPECT_EQ(items[2].choices[0].context, "Home and Garden: How to grow a garden. Pick a sunny spot.");
  EXPECT_EQ(continuations(items[2]),
            (std::vector<std::string>{" elephant", " the cat", " a big red ball more", " dog"}));
  EXPECT_EQ(items[2].choices[2].norm_bytes, std::string("a big red ball more").size());
  EXPECT_EQ(items[2].gold, 0);
  EXPECT_EQ(items[3].where.line, 4);
}

TEST(EvalTasks, PiqaReadsTheLabelsFileBesideIt) {
  EXPECT_EQ(piqa_labels_path("/d/valid.jsonl"), "/d/valid-labels.lst");
  const auto items = load_task("piqa", data("piqa/valid.jsonl"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].choices[1].context, "Question: How do I keep a cat off the table?\nAnswer:");
  EXPECT_EQ(continuations(items[0]), (std::vector<std::string>{" dog", " the cat sat on the mat"}));
  EXPECT_EQ(items[0].gold, 1);
  EXPECT_EQ(items[1].gold, 0);
}

TEST(EvalTasks, ArcAndOpenBookQaFindTheAnswerKeyAmongTheLabels) {
  const auto easy = load_task("arc_easy", data("arc/ARC-Easy-Dev.jsonl"));
  ASSERT_EQ(easy.size(), 2u);
  EXPECT_EQ(easy[0].choices[0].context, "Question: Which animal barks?\nAnswer:");
  EXPECT_EQ(easy[0].gold, 0);
  EXPECT_EQ(easy[1].gold, 2);  // numeric labels "1".."3"
  const auto challenge = load_task("arc_challenge", data("arc/ARC-Challenge-Dev.jsonl"));
  ASSERT_EQ(challenge.size(), 1u);
  EXPECT_EQ(challenge[0].choices.size(), 5u);
  EXPECT_EQ(challenge[0].gold, 3);
  const auto obqa = load_task("openbookqa", data("openbookqa/dev.jsonl"));
  ASSERT_EQ(obqa.size(), 2u);
  EXPECT_EQ(obqa[0].choices[0].context, "The largest land animal is");  // the stem alone
  EXPECT_EQ(obqa[1].gold, 2);  // answerKey " C": leading space ignored
}

TEST(EvalTasks, WinoGrandeSubstitutesEachOptionAndScoresTheSharedRest) {
  const auto items = load_task("winogrande", data("winogrande/dev.jsonl"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].choices[0].context, "The trophy did not fit in the suitcase because the trophy");
  EXPECT_EQ(items[0].choices[1].context, "The trophy did not fit in the suitcase because the suitcase");
  EXPECT_EQ(continuations(items[0]), (std::vector<std::string>{" was too big.", " was too big."}));
  EXPECT_EQ(items[0].gold, 0);
  EXPECT_EQ(items[1].gold, 1);
}

TEST(EvalTasks, CopaJoinsPremiseAndChoiceWithTheConnective) {
  const auto items = load_task("copa", data("copa/val.jsonl"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].choices[0].context, "The man fell down because");
  EXPECT_EQ(continuations(items[0]), (std::vector<std::string>{" the dog sat", " a cat"}));
  EXPECT_EQ(items[1].choices[0].context, "The cat was big therefore");
  EXPECT_EQ(items[1].gold, 1);
}

TEST(EvalTasks, BoolQIsNoOrYesFromLabelOrAnswer) {
  const auto items = load_task("boolq", data("boolq/val.jsonl"));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].choices[0].context, "The cat sat on the mat.\nQuestion: is the cat on the mat?\nAnswer:");
  EXPECT_EQ(continuations(items[0]), (std::vector<std::string>{" no", " yes"}));
  EXPECT_EQ(items[0].gold, 1);
  EXPECT_EQ(items[1].gold, 0);
  const auto original = load_task("boolq", data("boolq/dev.jsonl"));
  ASSERT_EQ(original.size(), 2u);
  EXPECT_EQ(original[1].gold, 0);
}

TEST(EvalTasks, MalformedRecordsNameTheFileAndLine) {
  gfwa::testing::TempDir dir;
  const std::string f = dir.file("bad.jsonl");
  const std::string ok_hs =
      R"({"activity_label": "A", "ctx_a": "x.", "ctx_b": "y", "endings": ["a", "b", "c", "d"], "label": 0})";
  struct Case {
    const char* task;
    std::string second_line;
    const char* expect;
  };
  const Case cases[] = {
      {"hellaswag", R"({"activity_label": "A", "ctx_a": "x.", "ctx_b": "y", "endings": ["a", "b"]})",
       "missing field 'label'"},
      {"hellaswag", R"({"activity_label": "A", "ctx_a": "x.", "ctx_b": "y", "endings": ["a", "b"], "label": 2})",
       "field 'label' is 2, outside the 2 choices"},
      {"hellaswag", R"({"activity_label": "A", "ctx_a": "x.", "ctx_b": 7, "endings": ["a", "b"], "label": 0})",
       "field 'ctx_b' must be a string (got 7)"},
      {"hellaswag", R"({"activity_label": "A", "ctx_a": "x.", "ctx_b": "y", "endings": ["a"], "label": 0)",
       "not valid JSON"},
      {"hellaswag", R"(["a list"])", "expected a JSON object, got array"},
      {"arc_easy", R"({"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": "E"})",
       "answerKey 'E' is none of the choices' labels"},
      {"winogrande", R"({"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"})",
       "field 'sentence' has no '_' blank"},
      {"winogrande", R"({"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "3"})",
       "field 'answer' is 3, outside the 2 choices"},
      {"copa", R"({"premise": "p.", "choice1": "a", "choice2": "b", "question": "why", "label": 0})",
       "field 'question' must be \"cause\" or \"effect\""},
      {"boolq", R"({"passage": "p", "question": "q", "label": "yes"})", "field 'label' must be true/false or 0/1"},
  };
  for (const Case& c : cases) {
    // The first line is valid for hellaswag only; other tasks fail on it, so it comes first for those.
    const bool hs = std::string(c.task) == "hellaswag";
    gfwa::testing::write_bytes(f, (hs ? ok_hs + "\n" : std::string("\n")) + c.second_line + "\n");
    const std::string err = load_error(c.task, f);
    EXPECT_NE(err.find(f + ":2: "), std::string::npos) << c.task << ": " << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.task << ": " << err;
  }
  // PIQA: a labels file that is missing, short, or holds something other than 0/1.
  const std::string q = dir.file("valid.jsonl"), labels = dir.file("valid-labels.lst");
  gfwa::testing::write_bytes(q, "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n");
  EXPECT_NE(load_error("piqa", q).find(labels + ": cannot open"), std::string::npos) << load_error("piqa", q);
  gfwa::testing::write_bytes(labels, "1\n");
  EXPECT_NE(load_error("piqa", q).find("1 labels for the 2 questions"), std::string::npos);
  gfwa::testing::write_bytes(labels, "1\n2\n");
  EXPECT_NE(load_error("piqa", q).find(labels + ":2: label must be 0 or 1 (got '2')"), std::string::npos);
  gfwa::testing::write_bytes(f, "\n\n");
  EXPECT_NE(load_error("copa", f).find("no records"), std::string::npos);
  EXPECT_NE(load_error("squad", f).find("unknown task 'squad'"), std::string::npos);
}

}  // namespace
}  // namespace gfwa::eval
