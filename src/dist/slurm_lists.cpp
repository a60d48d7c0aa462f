#include "dist/slurm_lists.h"

#include <cctype>
#include <stdexcept>

namespace gfwa::dist {
namespace {

constexpr size_t kMaxHosts = 1 << 20;  // a guard against a typo such as [1-999999999]

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

long long to_number(const std::string& s, const std::string& list) {
  if (!all_digits(s) || s.size() > 9) throw std::invalid_argument("'" + s + "' is not a number in '" + list + "'");
  return std::stoll(s);
}

// "01-03,07" -> 01 02 03 07
std::vector<std::string> expand_ranges(const std::string& body, const std::string& list) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t comma = body.find(',', pos);
    if (comma == std::string::npos) comma = body.size();
    const std::string range = body.substr(pos, comma - pos);
    const size_t dash = range.find('-');
    const std::string lo_s = range.substr(0, dash);
    const std::string hi_s = dash == std::string::npos ? lo_s : range.substr(dash + 1);
    const long long lo = to_number(lo_s, list), hi = to_number(hi_s, list);
    if (hi < lo) throw std::invalid_argument("range '" + range + "' runs backwards in '" + list + "'");
    if (out.size() + size_t(hi - lo + 1) > kMaxHosts) throw std::invalid_argument("'" + list + "' names too many hosts");
    for (long long v = lo; v <= hi; ++v) {
      std::string s = std::to_string(v);
      if (s.size() < lo_s.size()) s.insert(0, lo_s.size() - s.size(), '0');
      out.push_back(std::move(s));
    }
    pos = comma + 1;
  }
  return out;
}

// One host pattern without top-level commas: text and bracket groups.
std::vector<std::string> expand_pattern(const std::string& item, const std::string& list) {
  std::vector<std::string> hosts{""};
  size_t pos = 0;
  while (pos < item.size()) {
    const size_t open = item.find('[', pos);
    const std::string text = item.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    for (auto& h : hosts) h += text;
    if (open == std::string::npos) break;
    const size_t close = item.find(']', open);
    if (close == std::string::npos) throw std::invalid_argument("unclosed '[' in '" + list + "'");
    const auto parts = expand_ranges(item.substr(open + 1, close - open - 1), list);
    if (hosts.size() * parts.size() > kMaxHosts) throw std::invalid_argument("'" + list + "' names too many hosts");
    std::vector<std::string> next;
    next.reserve(hosts.size() * parts.size());
    for (const auto& h : hosts)
      for (const auto& p : parts) next.push_back(h + p);
    hosts = std::move(next);
    pos = close + 1;
  }
  for (const auto& h : hosts)
    if (h.empty() || h.find(']') != std::string::npos) throw std::invalid_argument("malformed host list '" + list + "'");
  return hosts;
}

}  // namespace

std::vector<std::string> expand_slurm_nodelist(const std::string& list) {
  std::vector<std::string> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= list.size(); ++i) {
    const char c = i < list.size() ? list[i] : ',';
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (depth < 0 || depth > 1) throw std::invalid_argument("unbalanced brackets in '" + list + "'");
    if (c != ',' || depth != 0) continue;
    const auto hosts = expand_pattern(list.substr(start, i - start), list);
    out.insert(out.end(), hosts.begin(), hosts.end());
    if (out.size() > kMaxHosts) throw std::invalid_argument("'" + list + "' names too many hosts");
    start = i + 1;
  }
  if (depth != 0) throw std::invalid_argument("unclosed '[' in '" + list + "'");
  return out;
}

std::vector<int> expand_slurm_tasks_per_node(const std::string& list) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    const std::string item = list.substr(pos, comma - pos);
    const size_t paren = item.find('(');
    const std::string count_s = item.substr(0, paren);
    long long repeat = 1;
    if (paren != std::string::npos) {
      if (item.size() < paren + 4 || item.compare(paren, 2, "(x") != 0 || item.back() != ')')
        throw std::invalid_argument("'" + item + "' is not N or N(xR) in '" + list + "'");
      repeat = to_number(item.substr(paren + 2, item.size() - paren - 3), list);
    }
    const long long count = to_number(count_s, list);
    if (repeat < 1 || out.size() + size_t(repeat) > kMaxHosts) throw std::invalid_argument("bad repeat in '" + list + "'");
    out.insert(out.end(), size_t(repeat), int(count));
    pos = comma + 1;
  }
  return out;
}

}  // namespace gfwa::dist
