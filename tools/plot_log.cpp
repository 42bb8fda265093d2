// Reading a run log into series, and grouping series into panels.

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/error.h"
#include "tools/plot.h"

namespace stag::plot {

namespace {

// ordered: keys keep the log's order, which is the order of the panels and legends.
using json = nlohmann::ordered_json;

// Keys that place a line rather than measure anything.
const std::set<std::string> kStepSkip = {"event", "step", "epoch", "seconds", "lr", "ranks"};
const std::set<std::string> kEpochSkip = {"event", "epoch", "step", "seconds", "ranks"};
// First words naming a data split: val_accuracy and val_auc are different quantities.
const std::set<std::string> kSplits = {"train", "val", "valid", "validation", "test"};

Series& series_named(std::vector<Series>& all, const std::string& name) {
  for (auto& s : all)
    if (s.name == name) return s;
  return all.emplace_back(Series{name, {}});
}

// Adds the numbers of one line at x = line[x_key] (else `rank`).
void add_points(std::vector<Series>& all, const json& line, const char* x_key, int64_t rank, const std::set<std::string>& skip) {
  const json* x = line.contains(x_key) ? &line[x_key] : nullptr;
  double at = x && x->is_number() ? x->get<double>() : static_cast<double>(rank);
  for (const auto& [key, value] : line.items())
    if (value.is_number() && !skip.count(key)) series_named(all, key).points[at] = value.get<double>();
}

void add_line(RunLog& log, const json& line, int64_t& steps, int64_t& epochs) {
  auto event = line.find("event");
  if (event == line.end() || !event->is_string()) return;
  if (*event == "step") add_points(log.step, line, "step", ++steps, kStepSkip);
  if (*event == "epoch") add_points(log.epoch, line, "epoch", ++epochs, kEpochSkip);
  if (*event == "test")
    for (const auto& [key, value] : line.items())
      if (value.is_number()) log.test.emplace_back(key, value.get<double>());
}

std::string first_word(const std::string& key) { return key.substr(0, key.find('_')); }
std::string last_word(const std::string& key) { return key.substr(key.rfind('_') + 1); }

// Names of series not yet placed whose word (by `word`) is shared by two or more of them.
std::map<std::string, std::vector<std::string>> shared_words(const std::vector<Series>& all, const std::set<std::string>& placed,
                                                             std::string (*word)(const std::string&)) {
  std::map<std::string, std::vector<std::string>> by_word;
  for (const auto& s : all)
    if (!placed.count(s.name) && s.name.find('_') != std::string::npos) by_word[word(s.name)].push_back(s.name);
  std::erase_if(by_word, [](const auto& kv) { return kv.second.size() < 2; });
  return by_word;
}

// Panel titles list keys in the log's order; a panel sits where its first key appeared.
std::vector<Panel> panels_of(const std::vector<Series>& all, bool per_step) {
  std::set<std::string> placed;
  std::map<std::string, std::string> label_of;  // key -> the panel's y label (its shared word)
  std::map<std::string, std::string> group_of;  // key -> the panel's first key
  auto take = [&](const std::map<std::string, std::vector<std::string>>& groups) {
    for (const auto& [word, keys] : groups)
      for (const auto& k : keys) {
        label_of[k] = word;
        group_of[k] = keys.front();
        placed.insert(k);
      }
  };
  take(shared_words(all, placed, last_word));
  auto by_first = shared_words(all, placed, first_word);
  std::erase_if(by_first, [](const auto& kv) { return kSplits.count(kv.first) > 0; });
  take(by_first);
  std::vector<Panel> panels;
  std::map<std::string, size_t> index;
  for (const auto& s : all) {
    std::string group = group_of.count(s.name) ? group_of[s.name] : s.name;
    if (!index.count(group)) {
      index[group] = panels.size();
      panels.push_back({"", per_step ? "step" : "epoch", label_of.count(s.name) ? label_of[s.name] : s.name, per_step, {}});
    }
    Panel& p = panels[index[group]];
    p.title += (p.title.empty() ? "" : ", ") + s.name;
    p.series.push_back(s);
  }
  return panels;
}

}  // namespace

RunLog read_run_log(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw rt::Error(fmt::format("{}: cannot open the log", path));
  RunLog log;
  int64_t steps = 0, epochs = 0, number = 0;
  for (std::string text; std::getline(in, text);) {
    ++number;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    json line = json::parse(text, nullptr, false);
    if (line.is_discarded() || !line.is_object()) throw rt::Error(fmt::format("{}:{}: not a JSON object", path, number));
    add_line(log, line, steps, epochs);
  }
  if (in.bad()) throw rt::Error(fmt::format("{}: cannot read the log", path));
  if (log.step.empty() && log.epoch.empty())
    throw rt::Error(fmt::format("{}: no numbers to plot (no \"step\" or \"epoch\" lines with numeric values)", path));
  return log;
}

std::vector<Panel> make_panels(const RunLog& log) {
  std::vector<Panel> panels = panels_of(log.step, true);
  for (auto& p : panels_of(log.epoch, false)) panels.push_back(std::move(p));
  return panels;
}

}  // namespace stag::plot
