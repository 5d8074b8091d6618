// Writes seed inputs for request_fuzzer into DIR: a selector byte (0: Match,
// 1: Fetch) followed by a serialized request like those weightctl and the
// client library send. Tensor names are those of request_fuzzer's checkpoint.
//   request_seed_writer DIR
#include <cstdio>
#include <string>

#include "tests/fuzz/fuzz_files.h"
#include "weightd/v1/weightd.pb.h"

namespace {

void AddTarget(google::protobuf::RepeatedPtrField<weightd::v1::TargetTensor>* target,
               const std::string& name, const std::string& dtype,
               std::initializer_list<int64_t> shape) {
  weightd::v1::TargetTensor* t = target->Add();
  t->set_name(name);
  t->set_dtype(dtype);
  for (int64_t d : shape) t->add_shape(d);
}

void Write(const std::string& dir, const std::string& name, char selector,
           const google::protobuf::Message& message) {
  weightd::fuzz::WriteFileOrDie(dir + "/" + name,
                                std::string(1, selector) + message.SerializeAsString());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: request_seed_writer DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  using weightd::v1::FetchRequest;
  using weightd::v1::MatchRequest;

  MatchRequest match;
  match.set_model("fuzz");
  AddTarget(match.mutable_target(), "conv1.weight", "float32", {4, 1, 2, 2});
  AddTarget(match.mutable_target(), "conv1.bias", "float32", {2});
  AddTarget(match.mutable_target(), "head.weight", "float32", {10, 2});
  Write(dir, "match_plain", 0, match);

  MatchRequest rules = match;
  rules.set_version(1);
  weightd::v1::RuleSet* r = rules.mutable_rules();
  r->add_rules()->set_add_prefix("backbone.");
  weightd::v1::RegexRule* regex = r->add_rules()->mutable_regex();
  regex->set_pattern("^backbone\\.(conv|fc)(\\d*)\\.");
  regex->set_replacement("\\1\\2.");
  weightd::v1::RenameRule* rename = r->add_rules()->mutable_rename();
  rename->set_from("embed.weight");
  rename->set_to("tok.weight");
  r->add_include("conv|fc|embed");
  r->add_exclude("mask");
  r->add_ignore_missing("^head\\.");
  r->set_auto_prefix(true);
  rules.mutable_options()->set_on_shape_mismatch(weightd::v1::SHAPE_POLICY_SKIP);
  rules.mutable_options()->set_strict(true);
  Write(dir, "match_rules", 0, rules);

  FetchRequest keys;
  keys.set_model("fuzz");
  keys.add_keys("module.conv1.weight");
  keys.add_keys("module.fc.bias");
  keys.set_chunk_bytes(1 << 20);
  Write(dir, "fetch_keys", 1, keys);

  FetchRequest all;
  all.set_model("fuzz");
  all.set_cast_dtype("bfloat16");
  Write(dir, "fetch_all_bf16", 1, all);

  FetchRequest cast;
  cast.set_model("fuzz");
  AddTarget(cast.mutable_target(), "fc.weight", "float16", {3, 2});
  AddTarget(cast.mutable_target(), "index", "int32", {3});
  cast.mutable_rules()->add_rules()->set_strip_prefix("x.");
  cast.set_cast_dtype("int8");
  cast.set_max_receive_bytes(64 << 20);
  Write(dir, "fetch_match_int8", 1, cast);
  return 0;
}
