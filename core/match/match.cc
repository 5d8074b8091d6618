#include "core/match/match.h"

#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/checkpoint/tensor.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

// Longest sequence of prefix rules `auto` tries: enough for two stacked
// wrappers (DDP around torch.compile) or a swap (strip module., add backbone.).
constexpr int kAutoMaxRules = 2;

absl::StatusOr<uint64_t> EntryBytes(const TensorEntry& entry, absl::string_view side) {
  absl::StatusOr<int64_t> numel = CheckedNumel(entry.shape);
  if (!numel.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(side, " tensor '", entry.name,
                                                   "' has a bad shape ", ShapeToString(entry.shape),
                                                   ": ", numel.status().message()));
  }
  uint64_t size = DTypeSize(entry.dtype);
  if (static_cast<uint64_t>(*numel) > std::numeric_limits<uint64_t>::max() / size) {
    return absl::InvalidArgumentError(
        absl::StrCat(side, " tensor '", entry.name, "' has more bytes than fit in 64 bits"));
  }
  return static_cast<uint64_t>(*numel) * size;
}

absl::Status CheckUniqueNames(absl::Span<const TensorEntry> entries, absl::string_view side) {
  absl::flat_hash_set<absl::string_view> seen;
  for (const TensorEntry& entry : entries) {
    if (!seen.insert(entry.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(side, " has the tensor name '", entry.name, "' twice"));
    }
  }
  return absl::OkStatus();
}

// Number of `names` present in `targets`, or -1 when two names coincide (such
// a rule would merge two source tensors into one).
int CountMatches(const std::vector<std::string>& names,
                 const absl::flat_hash_set<absl::string_view>& targets) {
  absl::flat_hash_set<absl::string_view> seen;
  int matches = 0;
  for (const std::string& name : names) {
    if (!seen.insert(name).second) return -1;
    if (targets.contains(name)) ++matches;
  }
  return matches;
}

std::vector<Rule> AutoCandidates() {
  std::vector<Rule> candidates;
  for (const char* prefix : kAutoPrefixes) {
    candidates.push_back(StripPrefix(prefix));
    candidates.push_back(AddPrefix(prefix));
  }
  return candidates;
}

// Finds the shortest sequence of at most kAutoMaxRules candidate rules that
// matches the most target names, if it matches strictly more than `*names`
// already does; applies it to `*names` and appends it to `*inferred`. Ties go
// to the shorter sequence, then to the earlier candidate. Every sequence is
// tried (not a greedy walk) because the first step of a two-rule fix alone
// often matches nothing.
void InferPrefixRules(const absl::flat_hash_set<absl::string_view>& targets,
                      std::vector<std::string>* names, std::vector<Rule>* inferred) {
  const std::vector<Rule> candidates = AutoCandidates();
  int best_score = CountMatches(*names, targets);
  std::vector<Rule> best_rules;
  std::vector<std::string> best_names;
  // Breadth-first over sequences, keeping each level's renamed names.
  std::vector<std::pair<std::vector<Rule>, std::vector<std::string>>> level = {{{}, *names}};
  for (int depth = 1; depth <= kAutoMaxRules; ++depth) {
    std::vector<std::pair<std::vector<Rule>, std::vector<std::string>>> next;
    for (const auto& [rules, current] : level) {
      for (const Rule& candidate : candidates) {
        std::vector<std::string> renamed;
        renamed.reserve(current.size());
        bool changed = false;
        for (const std::string& name : current) {
          renamed.push_back(ApplyLiteralRule(candidate, name));
          changed |= renamed.back() != name;
        }
        if (!changed) continue;  // a strip that applies nowhere adds nothing
        int score = CountMatches(renamed, targets);
        std::vector<Rule> sequence = rules;
        sequence.push_back(candidate);
        if (score > best_score) {
          best_score = score;
          best_rules = sequence;
          best_names = renamed;
        }
        // A collision cannot be undone by a later prefix rule.
        if (score >= 0 && depth < kAutoMaxRules) {
          next.emplace_back(std::move(sequence), std::move(renamed));
        }
      }
    }
    level = std::move(next);
  }
  if (best_rules.empty()) return;
  *names = std::move(best_names);
  for (Rule& rule : best_rules) inferred->push_back(std::move(rule));
}

// BatchNorm's _load_from_state_dict adds a missing "P.num_batches_tracked"
// (as 0) when the checkpoint has no version >= 2 metadata for module P, so
// PyTorch never reports it missing then. We see no metadata; a module with
// no key at all in the source has none, so drop the counter for those. (A
// source that has P's other keys but no counter is an old or renamed
// checkpoint; we keep reporting that one: the counter is not loaded.)
void DropFilledBatchNormCounters(const std::vector<std::string>& source_names,
                                 std::vector<std::string>* missing) {
  constexpr absl::string_view kCounter = "num_batches_tracked";
  absl::flat_hash_set<absl::string_view> source_prefixes;  // "a.", "a.b.", ...
  bool built = false;
  std::vector<std::string> kept;
  for (std::string& key : *missing) {
    absl::string_view k = key;
    bool counter = k == kCounter || absl::EndsWith(k, absl::StrCat(".", kCounter));
    if (counter) {
      if (!built) {
        for (absl::string_view name : source_names) {
          for (size_t dot = name.find('.'); dot != absl::string_view::npos;
               dot = name.find('.', dot + 1)) {
            source_prefixes.insert(name.substr(0, dot + 1));
          }
        }
        built = true;
      }
      absl::string_view prefix = k.substr(0, k.size() - kCounter.size());
      bool module_in_source =
          prefix.empty() ? !source_names.empty() : source_prefixes.contains(prefix);
      if (!module_in_source) continue;
    }
    kept.push_back(std::move(key));
  }
  *missing = std::move(kept);
}

bool IsEmpty(const RuleSet& rules) {
  return rules.rules.empty() && rules.include.empty() && rules.exclude.empty() &&
         rules.ignore_missing.empty() && rules.ignore_unexpected.empty() && !rules.auto_prefix;
}

std::string TorchSize(absl::Span<const int64_t> shape) {
  return absl::StrCat("torch.Size([", absl::StrJoin(shape, ", "), "])");
}

std::string QuotedList(const std::vector<std::string>& keys) {
  return absl::StrJoin(keys, ", ", [](std::string* out, const std::string& key) {
    absl::StrAppend(out, "\"", key, "\"");
  });
}

}  // namespace

std::vector<TensorEntry> EntriesFromStateDict(const StateDict& state_dict) {
  std::vector<TensorEntry> entries;
  entries.reserve(state_dict.size());
  for (const auto& [name, tensor] : state_dict) {
    entries.push_back(TensorEntry{name, tensor.dtype, tensor.shape});
  }
  return entries;
}

absl::StatusOr<MatchReport> Match(absl::Span<const TensorEntry> source,
                                  absl::Span<const TensorEntry> target, const RuleSet& rules,
                                  const MatchOptions& options) {
  // The same entries on both sides: what passes for the source passes for
  // the target, whose checks would fail where the source's already did.
  const bool onto_itself = source.data() == target.data() && source.size() == target.size();
  WEIGHTD_RETURN_IF_ERROR(CheckUniqueNames(source, "source"));
  if (!onto_itself) WEIGHTD_RETURN_IF_ERROR(CheckUniqueNames(target, "target"));
  std::vector<uint64_t> source_bytes;
  source_bytes.reserve(source.size());
  for (const TensorEntry& entry : source) {
    WEIGHTD_ASSIGN_OR_RETURN(uint64_t bytes, EntryBytes(entry, "source"));
    source_bytes.push_back(bytes);
  }
  if (!onto_itself) {
    for (const TensorEntry& entry : target) {
      WEIGHTD_RETURN_IF_ERROR(EntryBytes(entry, "target").status());
    }
  }
  if (onto_itself && IsEmpty(rules)) {
    // The same tensors onto themselves without rules (a plain Fetch, every
    // first Fetch of a model): each matches itself, in order, and nothing is
    // missing, unexpected or mismatched. Same report as the general path,
    // without its per-name copies and hash sets.
    MatchReport report;
    report.matched.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      report.bytes += source_bytes[i];
      if (report.bytes < source_bytes[i]) {  // wrapped
        return absl::InvalidArgumentError("total bytes to move do not fit in 64 bits");
      }
      report.matched.push_back(MatchedPair{source[i].name, source[i].name, source[i].shape,
                                           source[i].dtype, source[i].dtype, source_bytes[i]});
    }
    if (report.matched.empty() && !options.allow_empty) {
      report.errors.push_back(
          "no tensor matched: 0 of 0 target names found in the checkpoint; check prefixes "
          "(--auto) or pass --allow-empty");
    }
    return report;
  }
  WEIGHTD_ASSIGN_OR_RETURN(CompiledRuleSet compiled, CompiledRuleSet::Compile(rules));

  // Selected sources (indices into `source`) and their rewritten names.
  std::vector<size_t> selected;
  std::vector<std::string> names;
  for (size_t i = 0; i < source.size(); ++i) {
    if (!compiled.Selects(source[i].name)) continue;
    WEIGHTD_ASSIGN_OR_RETURN(std::string name, compiled.Apply(source[i].name));
    selected.push_back(i);
    names.push_back(std::move(name));
  }

  absl::flat_hash_map<absl::string_view, size_t> target_index;
  absl::flat_hash_set<absl::string_view> target_names;
  for (size_t i = 0; i < target.size(); ++i) {
    target_index.emplace(target[i].name, i);
    target_names.insert(target[i].name);
  }

  MatchReport report;
  if (rules.auto_prefix) InferPrefixRules(target_names, &names, &report.inferred_rules);

  // name -> position in `selected`; a second source on one name is an error
  // because one of the two would silently be lost.
  absl::flat_hash_map<absl::string_view, size_t> by_name;
  for (size_t k = 0; k < names.size(); ++k) {
    auto [it, inserted] = by_name.emplace(names[k], k);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source tensors '", source[selected[it->second]].name, "' and '",
          source[selected[k]].name, "' both map to ",
          target_names.contains(names[k]) ? "the target key '" : "the name '", names[k],
          "'; change the rules so that at most one source maps to each name"));
    }
  }

  std::vector<std::string> missing;
  for (const TensorEntry& t : target) {
    auto it = by_name.find(t.name);
    if (it == by_name.end()) {
      missing.push_back(t.name);
      continue;
    }
    size_t s = selected[it->second];
    if (source[s].shape != t.shape) {
      // Under kSkip the target keeps its initial value, as with the recipe
      // that updates model.state_dict() with the shape-matching keys, so it
      // is not missing either.
      report.mismatched.push_back(ShapeMismatch{t.name, source[s].name, source[s].shape, t.shape});
      continue;
    }
    if (report.bytes > std::numeric_limits<uint64_t>::max() - source_bytes[s]) {
      return absl::InvalidArgumentError("total bytes to move do not fit in 64 bits");
    }
    report.bytes += source_bytes[s];
    report.matched.push_back(
        MatchedPair{source[s].name, t.name, t.shape, source[s].dtype, t.dtype, source_bytes[s]});
  }
  DropFilledBatchNormCounters(names, &missing);
  for (std::string& name : missing) {
    if (!compiled.IgnoresMissing(name)) report.missing_keys.push_back(std::move(name));
  }
  for (const std::string& name : names) {
    if (!target_names.contains(name) && !compiled.IgnoresUnexpected(name)) {
      report.unexpected_keys.push_back(name);
    }
  }

  // Worded and ordered like torch.nn.Module.load_state_dict's RuntimeError.
  if (options.strict && !report.missing_keys.empty()) {
    report.errors.push_back(
        absl::StrCat("Missing key(s) in state_dict: ", QuotedList(report.missing_keys), "."));
  }
  if (options.strict && !report.unexpected_keys.empty()) {
    report.errors.push_back(
        absl::StrCat("Unexpected key(s) in state_dict: ", QuotedList(report.unexpected_keys), "."));
  }
  if (options.on_shape_mismatch == ShapePolicy::kError) {
    for (const ShapeMismatch& m : report.mismatched) {
      report.errors.push_back(absl::StrCat(
          "size mismatch for ", m.key, ": copying a param with shape ", TorchSize(m.source_shape),
          " from checkpoint, the shape in current model is ", TorchSize(m.target_shape), "."));
    }
  }
  if (report.matched.empty() && !options.allow_empty) {
    report.errors.push_back(
        report.mismatched.empty()
            ? absl::StrCat("no tensor matched: 0 of ", target.size(),
                           " target names found in the checkpoint; check prefixes (--auto) or "
                           "pass --allow-empty")
            : absl::StrCat("no tensor matched: ", report.mismatched.size(), " of ", target.size(),
                           " target names found in the checkpoint, all with another shape; pass "
                           "--allow-empty to load nothing"));
  }
  return report;
}

nlohmann::ordered_json MatchReportToJson(const MatchReport& report) {
  nlohmann::ordered_json out;
  out["ok"] = report.ok();
  out["errors"] = report.errors;
  out["matched"] = nlohmann::ordered_json::array();
  for (const MatchedPair& m : report.matched) {
    out["matched"].push_back({{"source", m.source},
                              {"target", m.target},
                              {"shape", m.shape},
                              {"source_dtype", std::string(DTypeName(m.source_dtype))},
                              {"target_dtype", std::string(DTypeName(m.target_dtype))}});
  }
  out["missing_keys"] = report.missing_keys;
  out["unexpected_keys"] = report.unexpected_keys;
  out["mismatched"] = nlohmann::ordered_json::array();
  for (const ShapeMismatch& m : report.mismatched) {
    out["mismatched"].push_back(
        {{"key", m.key}, {"source_shape", m.source_shape}, {"target_shape", m.target_shape}});
  }
  out["inferred_rules"] = nlohmann::ordered_json::array();
  for (const Rule& rule : report.inferred_rules) out["inferred_rules"].push_back(FormatRule(rule));
  out["bytes"] = report.bytes;
  return out;
}

std::string ErrorSummary(const MatchReport& report, size_t max_bytes) {
  std::string joined = absl::StrJoin(report.errors, "; ");
  if (joined.size() <= max_bytes) return joined;
  const std::string note = absl::StrCat(" ... (", joined.size(), " bytes of errors in all; ",
                                        report.errors.size(),
                                        " errors, listed whole in the match report)");
  size_t keep = max_bytes > note.size() ? max_bytes - note.size() : 0;
  // Not inside a UTF-8 sequence: back up over continuation bytes.
  while (keep > 0 && (static_cast<unsigned char>(joined[keep]) & 0xC0) == 0x80) --keep;
  joined.resize(keep);
  return joined + note;
}

}  // namespace weightd
