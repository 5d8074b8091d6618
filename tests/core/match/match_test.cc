#include "core/match/match.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weightd {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

TensorEntry F32(std::string name, std::vector<int64_t> shape) {
  return TensorEntry{std::move(name), DType::kFloat32, std::move(shape)};
}

// A small model: conv, batch norm and a classifier head.
std::vector<TensorEntry> Model(const std::string& prefix = "", int64_t classes = 10) {
  return {F32(prefix + "conv.weight", {8, 3, 3, 3}),
          F32(prefix + "bn.weight", {8}),
          F32(prefix + "bn.bias", {8}),
          TensorEntry{prefix + "bn.num_batches_tracked", DType::kInt64, {}},
          F32(prefix + "fc.weight", {classes, 8}),
          F32(prefix + "fc.bias", {classes})};
}

std::vector<std::string> Names(const std::vector<TensorEntry>& entries) {
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.name);
  return names;
}

std::vector<std::string> MatchedTargets(const MatchReport& report) {
  std::vector<std::string> names;
  for (const auto& m : report.matched) names.push_back(m.target);
  return names;
}

MatchReport MatchOrDie(const std::vector<TensorEntry>& source,
                       const std::vector<TensorEntry>& target, const RuleSet& rules = {},
                       const MatchOptions& options = {}) {
  absl::StatusOr<MatchReport> report = Match(source, target, rules, options);
  EXPECT_TRUE(report.ok()) << report.status();
  return report.ok() ? *report : MatchReport{};
}

RuleSet Parse(const std::vector<std::string>& items) {
  absl::StatusOr<RuleSet> set = ParseRuleSet(items);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *set : RuleSet{};
}

TEST(MatchTest, SameArchitectureMatchesEverythingInTargetOrder) {
  MatchReport r = MatchOrDie(Model(), Model());
  EXPECT_EQ(MatchedTargets(r), Names(Model()));
  EXPECT_THAT(r.missing_keys, IsEmpty());
  EXPECT_THAT(r.unexpected_keys, IsEmpty());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, (8 * 27 + 8 + 8 + 10 * 8 + 10) * 4 + 8);
}

TEST(MatchTest, TensorsOntoThemselvesGiveTheSameReportAsACopy) {
  // Match(v, v) without rules (every plain Fetch) takes a shortcut; it must
  // report exactly what matching onto an equal copy does.
  std::vector<TensorEntry> model = Model();
  std::vector<TensorEntry> copy = model;
  MatchReport self = MatchOrDie(model, model);
  MatchReport other = MatchOrDie(model, copy);
  EXPECT_EQ(MatchedTargets(self), MatchedTargets(other));
  ASSERT_EQ(self.matched.size(), other.matched.size());
  for (size_t i = 0; i < self.matched.size(); ++i) {
    EXPECT_EQ(self.matched[i].source, other.matched[i].source);
    EXPECT_EQ(self.matched[i].shape, other.matched[i].shape);
    EXPECT_EQ(self.matched[i].source_dtype, other.matched[i].source_dtype);
    EXPECT_EQ(self.matched[i].target_dtype, other.matched[i].target_dtype);
    EXPECT_EQ(self.matched[i].bytes, other.matched[i].bytes);
  }
  EXPECT_EQ(self.bytes, other.bytes);
  EXPECT_EQ(self.errors, other.errors);
  EXPECT_TRUE(self.ok());

  std::vector<TensorEntry> none;
  EXPECT_THAT(MatchOrDie(none, none).errors,
              ElementsAre("no tensor matched: 0 of 0 target names found in the checkpoint; "
                          "check prefixes (--auto) or pass --allow-empty"));

  std::vector<TensorEntry> twice = {F32("a", {1}), F32("a", {1})};
  absl::StatusOr<MatchReport> dup = Match(twice, twice, {}, {});
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(dup.status().message()),
              HasSubstr("source has the tensor name 'a' twice"));
}

TEST(MatchTest, MissingKeysFollowTargetOrderAndUnexpectedFollowSourceOrder) {
  std::vector<TensorEntry> source = {F32("z.extra", {1}), F32("b", {1}), F32("a.extra", {1})};
  std::vector<TensorEntry> target = {F32("y", {1}), F32("b", {1}), F32("x", {1})};
  MatchReport r = MatchOrDie(source, target);
  EXPECT_THAT(r.missing_keys, ElementsAre("y", "x"));
  EXPECT_THAT(r.unexpected_keys, ElementsAre("z.extra", "a.extra"));
}

TEST(MatchTest, IsStrictByDefaultAsLoadStateDict) {
  std::vector<TensorEntry> source = {F32("b", {1}), F32("extra", {1})};
  std::vector<TensorEntry> target = {F32("b", {1}), F32("x", {1})};
  MatchReport r = MatchOrDie(source, target);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.errors, ElementsAre(R"(Missing key(s) in state_dict: "x".)",
                                    R"(Unexpected key(s) in state_dict: "extra".)"));
  MatchReport lenient = MatchOrDie(source, target, {}, {ShapePolicy::kError, false});
  EXPECT_TRUE(lenient.ok()) << "strict=False tolerates missing and unexpected keys";
}

TEST(MatchTest, AMatchOfNoTensorIsAnError) {
  // Strict or not: a load that writes nothing is a prefix mistake.
  MatchReport r = MatchOrDie(Model("module."), Model(), {}, {ShapePolicy::kError, false});
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.errors, ElementsAre("no tensor matched: 0 of 6 target names found in the "
                                    "checkpoint; check prefixes (--auto) or pass --allow-empty"));
}

TEST(MatchTest, AllowEmptyAcceptsAMatchOfNoTensor) {
  MatchOptions options{ShapePolicy::kError, false};
  options.allow_empty = true;
  EXPECT_TRUE(MatchOrDie(Model("module."), Model(), {}, options).ok());
  EXPECT_TRUE(MatchOrDie({}, {}, {}, options).ok());
}

TEST(MatchTest, AMatchWhoseEveryPairIsSkippedIsAnError) {
  MatchReport r = MatchOrDie({F32("w", {4})}, {F32("w", {5})}, {}, {ShapePolicy::kSkip, true});
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.errors, ElementsAre(HasSubstr("no tensor matched: 1 of 1 target names found in "
                                              "the checkpoint, all with another shape")));
}

TEST(MatchTest, UnexpectedKeysAreNamedAfterTheRules) {
  MatchReport r = MatchOrDie({F32("module.extra", {1})}, {}, Parse({"strip_prefix:module."}));
  EXPECT_THAT(r.unexpected_keys, ElementsAre("extra"));
}

TEST(MatchTest, ShapeMismatchFailsByDefaultAndIsNeitherMissingNorUnexpected) {
  MatchReport r = MatchOrDie(Model("", 1000), Model("", 10));
  ASSERT_EQ(r.mismatched.size(), 2u);
  EXPECT_EQ(r.mismatched[0].key, "fc.weight");
  EXPECT_THAT(r.mismatched[0].source_shape, ElementsAre(1000, 8));
  EXPECT_THAT(r.mismatched[0].target_shape, ElementsAre(10, 8));
  EXPECT_THAT(r.missing_keys, IsEmpty());
  EXPECT_THAT(r.unexpected_keys, IsEmpty());
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.errors[0], HasSubstr("size mismatch for fc.weight: copying a param with shape "
                                     "torch.Size([1000, 8]) from checkpoint, the shape in "
                                     "current model is torch.Size([10, 8])."));
}

// The tutorials' recipe: model_dict.update(filtered);
// model.load_state_dict(model_dict) succeeds with strict=True, the skipped
// keys keeping their initial values.
TEST(MatchTest, SkippedShapeMismatchIsNotMissing) {
  MatchReport r = MatchOrDie(Model("", 1000), Model("", 10), {}, {ShapePolicy::kSkip, false});
  EXPECT_EQ(r.mismatched.size(), 2u);
  EXPECT_THAT(r.missing_keys, IsEmpty());
  EXPECT_THAT(MatchedTargets(r),
              ElementsAre("conv.weight", "bn.weight", "bn.bias", "bn.num_batches_tracked"));
  EXPECT_TRUE(r.ok());
}

TEST(MatchTest, SkippedShapeMismatchPassesUnderStrict) {
  MatchReport r = MatchOrDie(Model("", 1000), Model("", 10), {}, {ShapePolicy::kSkip, true});
  EXPECT_THAT(r.missing_keys, IsEmpty());
  EXPECT_TRUE(r.ok()) << r.errors[0];
}

TEST(MatchTest, MismatchedBytesAreNotCounted) {
  MatchReport r = MatchOrDie({F32("w", {4}), F32("v", {2})}, {F32("w", {5}), F32("v", {2})});
  EXPECT_EQ(r.bytes, 8u);
}

TEST(MatchTest, StrictFailsOnUnexpectedKeys) {
  MatchReport r =
      MatchOrDie({F32("a", {1}), F32("b", {1})}, {F32("a", {1})}, {}, {ShapePolicy::kError, true});
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.errors, ElementsAre(R"(Unexpected key(s) in state_dict: "b".)"));
}

TEST(MatchTest, StrictFailsOnMissingKeys) {
  MatchReport r =
      MatchOrDie({F32("a", {1})}, {F32("a", {1}), F32("b", {1})}, {}, {ShapePolicy::kError, true});
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.errors, ElementsAre(R"(Missing key(s) in state_dict: "b".)"));
}

TEST(MatchTest, StrictPassesWhenIgnorePatternsCoverTheRest) {
  MatchReport r =
      MatchOrDie({F32("a", {1}), F32("aux.w", {1})}, {F32("a", {1}), F32("bn.running_var", {1})},
                 Parse({"ignore:running_var$", "ignore:^aux\\."}), {ShapePolicy::kError, true});
  EXPECT_THAT(r.missing_keys, IsEmpty());
  EXPECT_THAT(r.unexpected_keys, IsEmpty());
  EXPECT_TRUE(r.ok());
}

TEST(MatchTest, IgnoreMissingDoesNotHideUnexpectedKeys) {
  MatchReport r = MatchOrDie({F32("x", {1})}, {F32("x2", {1})}, Parse({"ignore_missing:x"}));
  EXPECT_THAT(r.missing_keys, IsEmpty());
  EXPECT_THAT(r.unexpected_keys, ElementsAre("x"));
}

TEST(MatchTest, IgnoreUnexpectedDoesNotHideMissingKeys) {
  MatchReport r = MatchOrDie({F32("x", {1})}, {F32("x2", {1})}, Parse({"ignore_unexpected:x"}));
  EXPECT_THAT(r.missing_keys, ElementsAre("x2"));
  EXPECT_THAT(r.unexpected_keys, IsEmpty());
}

TEST(MatchTest, BatchNormCounterOfAModuleAbsentFromTheSourceIsNotMissing) {
  // PyTorch's BatchNorm fills it with 0 when the checkpoint has no metadata
  // for the module, so load_state_dict does not report it.
  std::vector<TensorEntry> target = {F32("conv.weight", {2}), F32("bn.weight", {2}),
                                     TensorEntry{"bn.num_batches_tracked", DType::kInt64, {}}};
  MatchReport r = MatchOrDie({F32("conv.weight", {2})}, target);
  EXPECT_THAT(r.missing_keys, ElementsAre("bn.weight"));
}

TEST(MatchTest, BatchNormCounterOfAModulePresentInTheSourceIsMissing) {
  std::vector<TensorEntry> target = {F32("bn.weight", {2}),
                                     TensorEntry{"bn.num_batches_tracked", DType::kInt64, {}}};
  MatchReport r = MatchOrDie({F32("bn.weight", {2})}, target);
  EXPECT_THAT(r.missing_keys, ElementsAre("bn.num_batches_tracked"));
}

TEST(MatchTest, DTypeDifferenceIsConvertedNotAnError) {
  std::vector<TensorEntry> source = {TensorEntry{"w", DType::kFloat16, {4}}};
  MatchReport r = MatchOrDie(source, {F32("w", {4})}, {}, {ShapePolicy::kError, true});
  ASSERT_EQ(r.matched.size(), 1u);
  EXPECT_EQ(r.matched[0].source_dtype, DType::kFloat16);
  EXPECT_EQ(r.matched[0].target_dtype, DType::kFloat32);
  EXPECT_EQ(r.matched[0].bytes, 8u) << "bytes are the source's, as stored";
  EXPECT_TRUE(r.ok());
}

TEST(MatchTest, ExcludedSourcesAreNotUnexpected) {
  MatchReport r = MatchOrDie(Model("", 1000), Model("", 10), Parse({"exclude:^fc\\."}),
                             {ShapePolicy::kError, false});
  EXPECT_THAT(r.mismatched, IsEmpty());
  EXPECT_THAT(r.unexpected_keys, IsEmpty());
  EXPECT_THAT(r.missing_keys, ElementsAre("fc.weight", "fc.bias"));
  EXPECT_TRUE(r.ok());
}

TEST(MatchTest, IncludeSelectsByOriginalNameBeforeRules) {
  MatchReport r = MatchOrDie(Model("module."), Model(),
                             Parse({"include:^module\\.conv\\.", "strip_prefix:module."}));
  EXPECT_THAT(MatchedTargets(r), ElementsAre("conv.weight"));
  EXPECT_THAT(r.unexpected_keys, IsEmpty());
}

TEST(MatchTest, MatchedPairsNameBothSides) {
  MatchReport r = MatchOrDie(Model("module."), Model(), Parse({"strip_prefix:module."}));
  ASSERT_EQ(r.matched.size(), 6u);
  EXPECT_EQ(r.matched[4].source, "module.fc.weight");
  EXPECT_EQ(r.matched[4].target, "fc.weight");
  EXPECT_THAT(r.matched[4].shape, ElementsAre(10, 8));
  EXPECT_THAT(r.inferred_rules, IsEmpty());
}

TEST(MatchTest, TwoSourcesOnOneTargetNameBothAndTheTarget) {
  absl::StatusOr<MatchReport> r =
      Match({F32("module.fc.weight", {2}), F32("fc.weight", {2})}, {F32("fc.weight", {2})},
            Parse({"strip_prefix:module."}), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("'module.fc.weight'"));
  EXPECT_THAT(r.status().message(),
              HasSubstr("'fc.weight' both map to the target key 'fc.weight'"));
}

TEST(MatchTest, DuplicateSourceNamesAreRejected) {
  absl::StatusOr<MatchReport> r = Match({F32("a", {1}), F32("a", {1})}, {}, {}, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("'a' twice"));
}

TEST(MatchTest, NegativeDimensionIsRejected) {
  absl::StatusOr<MatchReport> r = Match({F32("a", {-1})}, {}, {}, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("'a'"));
}

TEST(MatchTest, BadRuleSetIsRejected) {
  RuleSet rules;
  rules.rules = {RegexRule("(", "")};
  absl::StatusOr<MatchReport> r = Match(Model(), Model(), rules, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

// --- auto prefix inference ---

class AutoPrefixTest : public ::testing::TestWithParam<const char*> {};

TEST_P(AutoPrefixTest, InfersStrippingThePrefix) {
  std::string prefix = GetParam();
  MatchReport r = MatchOrDie(Model(prefix), Model(), Parse({"auto"}));
  EXPECT_THAT(r.inferred_rules, ElementsAre(StripPrefix(prefix)));
  EXPECT_EQ(r.matched.size(), 6u);
  EXPECT_THAT(r.unexpected_keys, IsEmpty());
}

TEST_P(AutoPrefixTest, InfersAddingThePrefix) {
  std::string prefix = GetParam();
  std::vector<TensorEntry> target = Model(prefix);
  target.push_back(F32("head.weight", {3, 8}));
  MatchReport r = MatchOrDie(Model(), target, Parse({"auto"}));
  EXPECT_THAT(r.inferred_rules, ElementsAre(AddPrefix(prefix)));
  EXPECT_EQ(r.matched.size(), 6u);
  EXPECT_THAT(r.missing_keys, ElementsAre("head.weight"));
}

INSTANTIATE_TEST_SUITE_P(UsualPrefixes, AutoPrefixTest,
                         ::testing::Values("module.", "_orig_mod.", "model.", "backbone.",
                                           "encoder."));

TEST(AutoTest, InventsNoPrefixForDifferentArchitectures) {
  std::vector<TensorEntry> other = {F32("features.0.0.weight", {32, 3, 3, 3}),
                                    F32("features.0.1.weight", {32}),
                                    F32("classifier.1.weight", {1000, 1280})};
  MatchReport r = MatchOrDie(Model("", 1000), other, Parse({"auto"}));
  EXPECT_THAT(r.inferred_rules, IsEmpty());
  EXPECT_THAT(r.unexpected_keys, ElementsAreArray(Names(Model("", 1000))));
  EXPECT_THAT(r.missing_keys, ElementsAreArray(Names(other)));
}

TEST(AutoTest, InfersNothingWhenNamesAlreadyMatch) {
  MatchReport r = MatchOrDie(Model(), Model(), Parse({"auto"}));
  EXPECT_THAT(r.inferred_rules, IsEmpty());
}

TEST(AutoTest, IsOffUnlessAsked) {
  MatchReport r = MatchOrDie(Model("module."), Model());
  EXPECT_THAT(r.inferred_rules, IsEmpty());
  EXPECT_THAT(r.matched, IsEmpty());
}

TEST(AutoTest, AppliesAfterTheExplicitRules) {
  // The explicit regex expects the "module." prefix still in place; were the
  // inferred strip applied first, fc would not become head.
  std::vector<TensorEntry> target = Model();
  target[4].name = "head.weight";
  target[5].name = "head.bias";
  MatchReport r =
      MatchOrDie(Model("module."), target, Parse({R"(regex:^module\.fc\.=module.head.)", "auto"}));
  EXPECT_THAT(r.inferred_rules, ElementsAre(StripPrefix("module.")));
  EXPECT_EQ(MatchedTargets(r), Names(target));
}

TEST(AutoTest, FindsStackedWrappers) {
  MatchReport r = MatchOrDie(Model("module._orig_mod."), Model(), Parse({"auto"}));
  EXPECT_THAT(r.inferred_rules, ElementsAre(StripPrefix("module."), StripPrefix("_orig_mod.")));
  EXPECT_EQ(r.matched.size(), 6u);
}

TEST(AutoTest, FindsAPrefixSwap) {
  MatchReport r = MatchOrDie(Model("module."), Model("backbone."), Parse({"auto"}));
  EXPECT_THAT(r.inferred_rules, ElementsAre(StripPrefix("module."), AddPrefix("backbone.")));
  EXPECT_EQ(r.matched.size(), 6u);
}

TEST(AutoTest, KeepsTheRulesMatchingMostKeys) {
  // Stripping "model." matches three targets; also stripping "module." loses
  // "module.a" again.
  std::vector<TensorEntry> source = {F32("model.b", {1}), F32("model.c", {1}),
                                     F32("module.a", {1})};
  MatchReport r =
      MatchOrDie(source, {F32("b", {1}), F32("c", {1}), F32("module.a", {1})}, Parse({"auto"}));
  EXPECT_THAT(r.inferred_rules, ElementsAre(StripPrefix("model.")));
  EXPECT_EQ(r.matched.size(), 3u);
}

TEST(AutoTest, SkipsACandidateThatMakesTwoSourcesCollide) {
  std::vector<TensorEntry> source = {F32("module.a", {1}), F32("a", {1}), F32("module.b", {1})};
  MatchReport r = MatchOrDie(source, {F32("a", {1}), F32("b", {1})}, Parse({"auto"}));
  EXPECT_THAT(r.inferred_rules, IsEmpty());
}

TEST(MatchJsonTest, HasExactlyTheDocumentedFields) {
  std::vector<TensorEntry> source = Model("module.", 1000);
  source.push_back(F32("module.extra", {1}));
  std::vector<TensorEntry> target = Model("", 10);
  target.push_back(F32("head.weight", {2}));
  MatchReport r = MatchOrDie(source, target, Parse({"auto"}));
  nlohmann::ordered_json json = MatchReportToJson(r);
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_THAT(keys, ElementsAre("ok", "errors", "matched", "missing_keys", "unexpected_keys",
                                "mismatched",
                                "inferred_rules", "bytes"));
  EXPECT_EQ(json["matched"][0].dump(),
            R"({"source":"module.conv.weight","target":"conv.weight","shape":[8,3,3,3],)"
            R"("source_dtype":"float32","target_dtype":"float32"})");
  EXPECT_EQ(json["ok"], r.ok());
  EXPECT_EQ(json["errors"].size(), r.errors.size());
  EXPECT_EQ(json["missing_keys"].dump(), R"(["head.weight"])");
  EXPECT_EQ(json["unexpected_keys"].dump(), R"(["extra"])");
  EXPECT_EQ(json["mismatched"][1].dump(),
            R"({"key":"fc.bias","source_shape":[1000],"target_shape":[10]})");
  EXPECT_EQ(json["inferred_rules"].dump(), R"(["strip_prefix:module."])");
  EXPECT_EQ(json["bytes"], (8 * 27 + 8 + 8) * 4 + 8);
}

TEST(MatchJsonTest, EmptyListsAreArrays) {
  nlohmann::ordered_json json = MatchReportToJson(MatchReport{});
  EXPECT_EQ(json.dump(), R"({"ok":true,"errors":[],"matched":[],"missing_keys":[],)"
                         R"("unexpected_keys":[],"mismatched":[],)"
                         R"("inferred_rules":[],"bytes":0})");
}

}  // namespace
TEST(ErrorSummaryTest, KeepsShortErrorsWhole) {
  MatchReport report;
  report.errors = {"a", "b"};
  EXPECT_EQ(ErrorSummary(report, 100), "a; b");
}

TEST(ErrorSummaryTest, CutsLongErrorsToTheBoundAtACharacterBoundary) {
  MatchReport report;
  std::string keys;
  for (int i = 0; i < 3000; ++i) absl::StrAppend(&keys, "\"layer", i, ".w\u00e9ight\", ");
  report.errors = {absl::StrCat("Missing key(s) in state_dict: ", keys), "second"};
  // Every alignment of the cut against the two-byte "\u00e9" comes up.
  for (size_t bound = 2000; bound < 2060; ++bound) {
    const std::string summary = ErrorSummary(report, bound);
    EXPECT_LE(summary.size(), bound);
    EXPECT_GT(summary.size(), bound - 8);  // cut at most one character short
    EXPECT_THAT(summary, StartsWith("Missing key(s) in state_dict: \"layer0."));
    EXPECT_THAT(summary, HasSubstr("2 errors, listed whole in the match report"));
    // Every byte up to the note is a whole UTF-8 sequence.
    const std::string kept = summary.substr(0, summary.find(" ... ("));
    EXPECT_NE(static_cast<unsigned char>(kept.back()), 0xC3) << bound;
  }
}

}  // namespace weightd
