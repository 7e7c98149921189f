#include "host/models/model_config.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

namespace wafer::host {
namespace {

using Json = nlohmann::json;

Json Llama32OneB() {
  return Json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 2048,
    "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 64, "rope_theta": 500000.0, "rms_norm_eps": 1e-05,
    "max_position_embeddings": 131072, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "bos_token_id": 128000, "eos_token_id": 128001,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
}

TEST(ModelConfigTest, ParsesLlama32) {
  auto c = ParseModelConfig(Llama32OneB().dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  const ModelArch& a = c->arch;
  EXPECT_EQ(a.vocab_size, 128256u);
  EXPECT_EQ(a.num_kv_heads, 8u);
  EXPECT_EQ(a.head_dim, 64u);
  EXPECT_FLOAT_EQ(a.rope_theta, 500000.0f);
  EXPECT_TRUE(a.tie_embeddings);
  EXPECT_FLOAT_EQ(a.rope_scaling.factor, 32.0f);
  EXPECT_EQ(a.rope_scaling.original_max_position, 8192u);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->eos_token_id, 128001u);
  // Llama 3.2 1B has 1,235,814,400 parameters (tied).
  EXPECT_EQ(c->param_count, 1235814400u);
}

TEST(ModelConfigTest, Defaults) {
  Json j = Llama32OneB();
  j.erase("num_key_value_heads");
  j.erase("head_dim");
  j.erase("rope_scaling");
  j.erase("tie_word_embeddings");
  j.erase("rope_theta");
  auto c = ParseModelConfig(j.dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->arch.num_kv_heads, 32u);
  EXPECT_EQ(c->arch.head_dim, 64u);
  EXPECT_EQ(c->arch.rope_scaling.factor, 0.0f);
  EXPECT_FALSE(c->arch.tie_embeddings);
  EXPECT_FLOAT_EQ(c->arch.rope_theta, 10000.0f);
}

TEST(ModelConfigTest, RoundTripsThroughModelConfigJson) {
  auto c = ParseModelConfig(Llama32OneB().dump(), "a");
  ASSERT_TRUE(c.ok());
  auto again = ParseModelConfig(ModelConfigJson(c->arch, "bfloat16", 1, 2), "b");
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(again->arch.hidden_size, c->arch.hidden_size);
  EXPECT_EQ(again->arch.rms_norm_eps, c->arch.rms_norm_eps);
  EXPECT_EQ(again->arch.rope_scaling.low_freq_factor, c->arch.rope_scaling.low_freq_factor);
  EXPECT_EQ(again->param_count, c->param_count);
}

TEST(ModelConfigTest, RefusesBadFieldsWithDetail) {
  struct Case {
    std::function<void(Json&)> edit;
    std::string must_mention;
  };
  const std::vector<Case> cases = {
      {[](Json& j) { j.erase("hidden_size"); }, "'hidden_size' is required"},
      {[](Json& j) { j["vocab_size"] = "big"; }, "'vocab_size' must be an integer"},
      {[](Json& j) { j["num_hidden_layers"] = 0; }, "'num_hidden_layers' must be a positive"},
      {[](Json& j) { j["num_key_value_heads"] = 5; }, "not a multiple of num_key_value_heads"},
      {[](Json& j) { j["head_dim"] = 63; }, "must be even"},
      {[](Json& j) { j["rms_norm_eps"] = -1; }, "'rms_norm_eps'"},
      {[](Json& j) { j["tie_word_embeddings"] = 1; }, "'tie_word_embeddings' must be true"},
      {[](Json& j) { j["architectures"] = {"MistralForCausalLM"}; }, "not LlamaForCausalLM"},
      {[](Json& j) { j["rope_scaling"]["rope_type"] = "yarn"; }, "llama3"},
      {[](Json& j) { j["rope_scaling"].erase("original_max_position_embeddings"); },
       "original_max_position_embeddings"},
      {[](Json& j) { j["rope_scaling"]["high_freq_factor"] = 0.5; }, "must exceed"},
      {[](Json& j) { j.erase("head_dim"); j["hidden_size"] = 2050; }, "not divisible"},
  };
  for (const Case& c : cases) {
    Json j = Llama32OneB();
    c.edit(j);
    auto r = ParseModelConfig(j.dump(), "dir/config.json");
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.must_mention;
    const std::string detail = r.ok() ? std::string() : r.error().message;
    EXPECT_NE(detail.find(c.must_mention), std::string::npos) << detail;
    EXPECT_NE(detail.find("dir/config.json"), std::string::npos) << detail;
  }
  EXPECT_EQ(ParseModelConfig("{not json", "c").status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wafer::host
