#include "core/checkpoint/value.h"

#include "gtest/gtest.h"

namespace weightd {
namespace {

TEST(ValueTest, SetItemReplacesEqualKeysLikePython) {
  ValuePtr d = Value::Dict();
  ASSERT_TRUE(d->SetItem(Value::Int(1), Value::String("a")).ok());
  ASSERT_TRUE(d->SetItem(Value::Bool(true), Value::String("b")).ok());
  ASSERT_TRUE(d->SetItem(Value::Float(1.0), Value::String("c")).ok());
  ASSERT_EQ(d->entries().size(), 1u);
  EXPECT_EQ(d->entries()[0].second->str(), "c");
}

TEST(ValueTest, KeepsInsertionOrder) {
  ValuePtr d = Value::Dict();
  ASSERT_TRUE(d->SetItem(Value::String("b"), Value::Int(1)).ok());
  ASSERT_TRUE(d->SetItem(Value::String("a"), Value::Int(2)).ok());
  EXPECT_EQ(d->entries()[0].first->str(), "b");
  ASSERT_NE(d->Find("a"), nullptr);
  EXPECT_EQ(d->Find("a")->int_value(), 2);
  EXPECT_EQ(d->Find("c"), nullptr);
}

TEST(ValueTest, RejectsUnhashableKeys) {
  ValuePtr d = Value::Dict();
  absl::Status s = d->SetItem(Value::List(), Value::Int(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("unhashable"), std::string::npos) << s;
}

}  // namespace
}  // namespace weightd
