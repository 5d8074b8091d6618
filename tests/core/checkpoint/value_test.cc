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

TEST(ValueTest, StrKeysNeverEqualOtherKeys) {
  // str keys have an index of their own; "1" is not 1 and "a" is not b"a".
  ValuePtr d = Value::Dict();
  ASSERT_TRUE(d->SetItem(Value::String("1"), Value::Int(1)).ok());
  ASSERT_TRUE(d->SetItem(Value::Int(1), Value::Int(2)).ok());
  ASSERT_TRUE(d->SetItem(Value::String("a"), Value::Int(3)).ok());
  ASSERT_TRUE(d->SetItem(Value::Bytes("a"), Value::Int(4)).ok());
  ASSERT_EQ(d->entries().size(), 4u);
  ASSERT_NE(d->Find("1"), nullptr);
  EXPECT_EQ(d->Find("1")->int_value(), 1);
  EXPECT_EQ(d->Find("a")->int_value(), 3);
}

TEST(ValueTest, SetItemOfAnEqualStrKeyKeepsTheFirstKeyObject) {
  ValuePtr d = Value::Dict();
  ValuePtr first = Value::String("weight");
  ASSERT_TRUE(d->SetItem(first, Value::Int(1)).ok());
  ASSERT_TRUE(d->SetItem(Value::String("weight"), Value::Int(2)).ok());
  ASSERT_EQ(d->entries().size(), 1u);
  EXPECT_EQ(d->entries()[0].first, first);
  EXPECT_EQ(d->Find("weight")->int_value(), 2);
}

TEST(ValueTest, NonDictsHaveNoEntries) {
  EXPECT_TRUE(Value::List()->entries().empty());
  EXPECT_EQ(Value::String("x")->Find("x"), nullptr);
}

TEST(ValueTest, NumbersReadAsZeroThroughAnotherKindsAccessor) {
  EXPECT_EQ(Value::Float(2.5)->int_value(), 0);
  EXPECT_EQ(Value::Int(3)->float_value(), 0.0);
  EXPECT_FALSE(Value::Float(2.5)->bool_value());
  EXPECT_EQ(Value::Complex(1.5, 2.5)->float_value(), 1.5);
  EXPECT_EQ(Value::Complex(1.5, 2.5)->imag_value(), 2.5);
}

}  // namespace
}  // namespace weightd
