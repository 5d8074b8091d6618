#include "core/match/rules.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weightd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ApplyOrDie(const RuleSet& rule_set, absl::string_view name) {
  absl::StatusOr<CompiledRuleSet> compiled = CompiledRuleSet::Compile(rule_set);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  if (!compiled.ok()) return "";
  absl::StatusOr<std::string> out = compiled->Apply(name);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

RuleSet Rules(std::vector<Rule> rules) {
  RuleSet set;
  set.rules = std::move(rules);
  return set;
}

TEST(RulesTest, StripPrefixRemovesALeadingPrefix) {
  EXPECT_EQ(ApplyOrDie(Rules({StripPrefix("module.")}), "module.fc.weight"), "fc.weight");
}

TEST(RulesTest, StripPrefixLeavesNamesWithoutThePrefix) {
  EXPECT_EQ(ApplyOrDie(Rules({StripPrefix("module.")}), "fc.module.weight"), "fc.module.weight");
}

TEST(RulesTest, AddPrefixPrependsToEveryName) {
  EXPECT_EQ(ApplyOrDie(Rules({AddPrefix("backbone.")}), "conv1.weight"), "backbone.conv1.weight");
}

TEST(RulesTest, RegexReplacesWithCaptureGroups) {
  EXPECT_EQ(ApplyOrDie(Rules({RegexRule(R"(^layer(\d+)\.)", R"(stage\1.)")}), "layer3.0.weight"),
            "stage3.0.weight");
}

TEST(RulesTest, RegexReplacesEveryMatchLikePythonReSub) {
  EXPECT_EQ(ApplyOrDie(Rules({RegexRule("gamma", "weight")}), "gamma.gamma"), "weight.weight");
}

TEST(RulesTest, RegexMatchesAnywhereUnlessAnchored) {
  EXPECT_EQ(ApplyOrDie(Rules({RegexRule(R"(\.bn)", ".norm")}), "block.bn.weight"),
            "block.norm.weight");
}

TEST(RulesTest, RenameChangesOnlyTheExactName) {
  RuleSet set = Rules({Rename("fc.weight", "head.weight")});
  EXPECT_EQ(ApplyOrDie(set, "fc.weight"), "head.weight");
  EXPECT_EQ(ApplyOrDie(set, "fc.weight2"), "fc.weight2");
}

TEST(RulesTest, RulesApplyInOrder) {
  EXPECT_EQ(ApplyOrDie(Rules({StripPrefix("module."), AddPrefix("backbone.")}), "module.x"),
            "backbone.x");
  EXPECT_EQ(ApplyOrDie(Rules({AddPrefix("backbone."), StripPrefix("module.")}), "module.x"),
            "backbone.module.x");
}

TEST(RulesTest, ParsesEveryKindOfItem) {
  absl::StatusOr<RuleSet> set =
      ParseRuleSet({"strip_prefix:module.", "add_prefix:backbone.", R"(regex:^layer(\d)=stage\1)",
                    "rename:fc.weight=head.weight", "include:^a", "exclude:b$",
                    "ignore:num_batches", "ignore_missing:m", "ignore_unexpected:u", "auto"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->rules, ElementsAre(StripPrefix("module."), AddPrefix("backbone."),
                                      RegexRule(R"(^layer(\d))", R"(stage\1)"),
                                      Rename("fc.weight", "head.weight")));
  EXPECT_THAT(set->include, ElementsAre("^a"));
  EXPECT_THAT(set->exclude, ElementsAre("b$"));
  EXPECT_THAT(set->ignore_missing, ElementsAre("num_batches", "m"));
  EXPECT_THAT(set->ignore_unexpected, ElementsAre("num_batches", "u"));
  EXPECT_TRUE(set->auto_prefix);
}

TEST(RulesTest, RegexItemSplitsAtTheFirstUnescapedEquals) {
  absl::StatusOr<RuleSet> set = ParseRuleSet({R"(regex:a\=b=c=d)"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->rules, ElementsAre(RegexRule("a=b", "c=d")));
  EXPECT_EQ(ApplyOrDie(*set, "xa=by"), "xc=dy");
}

TEST(RulesTest, RegexWithEmptyReplacementDeletesTheMatch) {
  absl::StatusOr<RuleSet> set = ParseRuleSet({R"(regex:^model\.=)"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(ApplyOrDie(*set, "model.fc.bias"), "fc.bias");
}

TEST(RulesTest, FormatRuleSetRoundTrips) {
  RuleSet set = Rules(
      {StripPrefix("module."), RegexRule("a=b", R"(\0=)"), Rename("x", "y=z"), AddPrefix("p.")});
  set.include = {"i"};
  set.exclude = {"e"};
  set.ignore_missing = {"m"};
  set.ignore_unexpected = {"u"};
  set.auto_prefix = true;
  std::vector<std::string> items = FormatRuleSet(set);
  EXPECT_EQ(items[1], R"(regex:a\=b=\0=)");
  absl::StatusOr<RuleSet> parsed = ParseRuleSet(items);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->rules, set.rules);
  EXPECT_EQ(parsed->include, set.include);
  EXPECT_EQ(parsed->exclude, set.exclude);
  EXPECT_EQ(parsed->ignore_missing, set.ignore_missing);
  EXPECT_EQ(parsed->ignore_unexpected, set.ignore_unexpected);
  EXPECT_TRUE(parsed->auto_prefix);
}

TEST(RulesTest, RejectsUnknownKind) {
  absl::StatusOr<RuleSet> set = ParseRuleSet({"chop:module."});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(set.status().message(), HasSubstr("unknown kind 'chop'"));
}

TEST(RulesTest, RejectsItemWithoutKind) {
  absl::StatusOr<RuleSet> set = ParseRuleSet({"module."});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(set.status().message(), HasSubstr("has no kind"));
}

TEST(RulesTest, RejectsEmptyArgument) {
  EXPECT_EQ(ParseRuleSet({"strip_prefix:"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RulesTest, RejectsRegexItemWithoutReplacement) {
  absl::StatusOr<RuleSet> set = ParseRuleSet({"regex:^layer"});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(set.status().message(), HasSubstr("PATTERN=REPLACEMENT"));
}

TEST(RulesTest, RejectsRenameItemWithoutNewName) {
  EXPECT_EQ(ParseRuleSet({"rename:fc.weight"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RulesTest, BadRegexErrorQuotesThePatternAndRe2sReason) {
  absl::StatusOr<RuleSet> set = ParseRuleSet({"regex:layer(\\d=stage"});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(set.status().message(), HasSubstr("'layer(\\d'"));
  EXPECT_THAT(set.status().message(), HasSubstr("missing )"));
}

TEST(RulesTest, BadIncludePatternIsRejected) {
  absl::StatusOr<RuleSet> set = ParseRuleSet({"include:[abc"});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(set.status().message(), HasSubstr("include pattern '[abc'"));
}

TEST(RulesTest, ReplacementNamingAMissingGroupIsRejected) {
  absl::Status s = ValidateRuleSet(Rules({RegexRule("layer(\\d)", "stage\\2")}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("stage\\2"));
  EXPECT_THAT(s.message(), HasSubstr("layer(\\d)"));
}

TEST(RulesTest, RegexTooLargeForTheMemoryLimitIsRejected) {
  // Nested counted repetitions blow up RE2's program size.
  absl::Status s = ValidateRuleSet(Rules({RegexRule("((a{100}){100}){100}", "")}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("((a{100}){100}){100}"));
}

TEST(RulesTest, OverlongPatternIsRejected) {
  absl::Status s = ValidateRuleSet(Rules({RegexRule(std::string(kMaxPatternLength + 1, 'a'), "")}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("limit"));
}

TEST(RulesTest, RuleThatGrowsNamesWithoutBoundIsStopped) {
  RuleSet set;
  for (int i = 0; i < 20; ++i) set.rules.push_back(RegexRule("^.*$", R"(\0\0)"));
  absl::StatusOr<CompiledRuleSet> compiled = CompiledRuleSet::Compile(set);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  absl::StatusOr<std::string> out = compiled->Apply("layer.weight");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("longer than"));
}

TEST(RulesTest, IncludeKeepsOnlyMatchingNamesAndExcludeWins) {
  absl::StatusOr<RuleSet> set = ParseRuleSet({"include:^backbone\\.", "exclude:\\.fc\\."});
  ASSERT_TRUE(set.ok()) << set.status();
  absl::StatusOr<CompiledRuleSet> compiled = CompiledRuleSet::Compile(*set);
  ASSERT_TRUE(compiled.ok());
  EXPECT_TRUE(compiled->Selects("backbone.conv.weight"));
  EXPECT_FALSE(compiled->Selects("head.weight"));
  EXPECT_FALSE(compiled->Selects("backbone.fc.weight"));
}

TEST(RulesTest, NoIncludePatternSelectsEverything) {
  absl::StatusOr<CompiledRuleSet> compiled = CompiledRuleSet::Compile(RuleSet{});
  ASSERT_TRUE(compiled.ok());
  EXPECT_TRUE(compiled->Selects("anything"));
}

}  // namespace
}  // namespace weightd
