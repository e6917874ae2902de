#include "cli/serve_flags.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace keyward {
namespace {

// A provider that exists only in this test: its flags reach serve through the registry alone.
class ExampleModule : public KmsProviderModule {
 public:
  explicit ExampleModule(std::string name, std::vector<KmsServeFlag> flags)
      : name_(std::move(name)), flags_(std::move(flags)) {}
  std::string name() const override { return name_; }
  std::string display_name() const override { return "Example KMS"; }
  absl::StatusOr<KmsKeySettings> Validate(const std::string&, const nlohmann::json&,
                                          const std::string&) const override {
    return absl::UnimplementedError("test module");
  }
  nlohmann::json Instructions(const KmsKeyRef&, const ServiceIdentity&) const override {
    return nlohmann::json::object();
  }
  std::vector<KmsKeyCheck> DescriptionChecks(const KmsKeyRef&,
                                             const KeyDescription&) const override {
    return {};
  }
  std::vector<KmsServeFlag> serve_flags() const override { return flags_; }
  std::string serve_help_note() const override { return "reached over its own protocol"; }

 private:
  std::string name_;
  std::vector<KmsServeFlag> flags_;
};

std::vector<KmsServeFlag> ExampleFlags() {
  return {{"example-endpoint", "URL", "where the Example KMS answers", "EXAMPLE_ENDPOINT"},
          {"example-fips", "", "use its FIPS endpoint", ""}};
}

// The help text from the heading "<display name> (<name>)" to the next blank line.
std::string SectionOf(const std::string& help, const KmsProviderModule& m) {
  std::string heading = absl::StrCat("\n", m.display_name(), " (", m.name(), ")");
  size_t start = help.find(heading);
  if (start == std::string::npos) return "";
  size_t end = help.find("\n\n", start + 1);
  return help.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

TEST(ServeFlags, HelpListsEachBuiltInProvidersFlagsUnderItsName) {
  std::string help = ServeHelp();
  int sections = 0;
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    if (m->serve_flags().empty()) continue;
    ++sections;
    std::string section = SectionOf(help, *m);
    ASSERT_FALSE(section.empty()) << "no section for " << m->name() << " in\n" << help;
    for (const KmsServeFlag& f : m->serve_flags()) {
      EXPECT_TRUE(absl::StrContains(section, absl::StrCat("  --", f.name, " ")))
          << f.name << " is not listed under " << m->name() << ":\n"
          << section;
    }
  }
  EXPECT_GE(sections, 2);  // azure-key-vault and aws-kms
  // The server's own flags stay in the general part.
  EXPECT_TRUE(absl::StrContains(help, "  --data-dir DIR"));
  EXPECT_FALSE(absl::StrContains(help, "AWS KMS (credentials"));  // the old hand-written heading
}

TEST(ServeFlags, ANewProvidersFlagsNeedOnlyItsModule) {
  KmsProviderRegistry registry;
  ASSERT_TRUE(
      registry.Register(std::make_unique<ExampleModule>("example-kms", ExampleFlags())).ok());
  std::string help = ServeHelp(registry);
  EXPECT_TRUE(absl::StrContains(help,
                                "\nExample KMS (example-kms): reached over its own protocol:\n"
                                "  --example-endpoint URL    where the Example KMS answers\n"
                                "  --example-fips            use its FIPS endpoint\n"))
      << help;

  auto parsed = ParseServeFlags(
      {"--example-endpoint", "https://kms.test", "--example-fips", "--data-dir", "/tmp/x"},
      registry);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Get("example-endpoint"), "https://kms.test");
  EXPECT_TRUE(parsed->Has("example-fips"));

  // A misspelt provider flag is refused, naming it; so is a flag of a provider not registered.
  auto typo = ParseServeFlags({"--example-endpiont", "https://kms.test"}, registry);
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().message(), "unknown flag --example-endpiont; see --help");
  auto foreign = ParseServeFlags({"--aws-endpoint-url", "https://kms.test"}, registry);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.status().message(), "unknown flag --aws-endpoint-url; see --help");
  auto valueless = ParseServeFlags({"--example-fips=yes"}, registry);
  EXPECT_EQ(valueless.status().message(), "--example-fips takes no value");
}

TEST(ServeFlags, TwoProvidersClaimingOneFlagIsAnError) {
  KmsProviderRegistry registry;
  ASSERT_TRUE(
      registry.Register(std::make_unique<ExampleModule>("example-kms", ExampleFlags())).ok());
  ASSERT_TRUE(
      registry.Register(std::make_unique<ExampleModule>("example-two", ExampleFlags())).ok());
  auto parsed = ParseServeFlags({}, registry);
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(absl::StrContains(parsed.status().message(),
                                "example-two claims the flag "
                                "--example-endpoint"))
      << parsed.status();
  KmsProviderRegistry server_clash;
  ASSERT_TRUE(server_clash
                  .Register(std::make_unique<ExampleModule>(
                      "example-kms", std::vector<KmsServeFlag>{{"data-dir", "D", "x", ""}}))
                  .ok());
  EXPECT_FALSE(ParseServeFlags({}, server_clash).ok());
}

TEST(ServeFlags, FlagValuesFallBackToTheModulesEnvironmentVariable) {
  KmsServeFlag endpoint = ExampleFlags()[0];
  setenv("EXAMPLE_ENDPOINT", "https://from-env.test", 1);
  EXPECT_EQ(KmsFlagValues({}).GetOrEnv(endpoint, "dflt"), "https://from-env.test");
  EXPECT_EQ(
      KmsFlagValues(std::map<std::string, std::string>{{"example-endpoint", "https://flag.test"}})
          .GetOrEnv(endpoint),
      "https://flag.test");
  unsetenv("EXAMPLE_ENDPOINT");
  EXPECT_EQ(KmsFlagValues({}).GetOrEnv(endpoint, "dflt"), "dflt");
}

}  // namespace
}  // namespace keyward
