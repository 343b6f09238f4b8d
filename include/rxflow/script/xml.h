// File: rxflow/script/xml.h
//
// NCPDP SCRIPT XML ⇄ typed messages (rxflow/script/model.h), for two profiles:
//
//   2023011  the default, as the mission names it. PROVISIONAL: no public 2023011 schema
//            exists, so the profile is the 2017071 structure plus the changes public
//            evidence shows, kept as data (data/script/2023011.profile) that a holder of
//            the licensed schema can correct and load at run time.
//   2017071  verified: element order, cardinality and lengths come from NCPDP's schema.
//
// Everything RxFlow writes and reads passes a structural validator driven by the
// profile's tables: element order, cardinality, the `an` character set (printable ASCII),
// lengths, numeric and date formats, and code lists. An over-long or non-printable value
// is refused, never truncated (21 CFR 1311.170(e)).
//
// Reading is namespace-agnostic (a 10.6-style `xmlns` still loads) and refuses any DTD or
// entity declaration (no XXE, no entity expansion).
#ifndef RXFLOW_SCRIPT_XML_H_
#define RXFLOW_SCRIPT_XML_H_

#include <memory>
#include <string>
#include <string_view>

#include "rxflow/issue.h"
#include "rxflow/script/model.h"
#include "rxflow/status.h"

namespace rxflow::script {

enum class Version { k2017071, k2023011 };

// "2017071" / "2023011".
std::string_view VersionName(Version v);
// Accepts "2017071" and "2023011"; InvalidArgument otherwise.
StatusOr<Version> ParseVersion(std::string_view name);

// The structure tables and version rules of one SCRIPT version. Immutable; safe to share
// between threads.
class Profile {
 public:
  struct Impl;
  explicit Profile(std::unique_ptr<const Impl> impl);
  ~Profile();
  Profile(const Profile&) = delete;
  Profile& operator=(const Profile&) = delete;

  // The profile's version name ("2017071", "2023011", or a loaded profile's `version`).
  const std::string& name() const;
  // True for profiles whose tables are not verified against a schema (2023011).
  bool provisional() const;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<const Impl> impl_;
};

// The built-in profile for `v` (tables compiled into the library).
const Profile& BuiltinProfile(Version v);

// The built-in 2017071 structure table (the text of data/script/2017071.structure).
std::string_view BuiltinStructureTable();

// Builds a profile from a structure table (the format of data/script/2017071.structure)
// and optional version rules (the format of data/script/2023011.profile). InvalidArgument
// names the line of the first problem.
StatusOr<std::shared_ptr<const Profile>> LoadProfile(std::string_view structure_table,
                                                     std::string_view rules = {});

struct WriteOptions {
  // The profile to write. Default (nullptr): BuiltinProfile(Version::k2023011).
  const Profile* profile = nullptr;
  // Indent the output (two spaces). Default: compact, one line.
  bool pretty = false;
};

// Writes `message` as SCRIPT XML and validates it against the profile. On any error the
// message is not returned: InvalidArgument, with every problem in `issues` (XML paths).
StatusOr<std::string> WriteXml(const Message& message, IssueList& issues,
                               const WriteOptions& options = {});

struct ReadOptions {
  // Profile to read with. Default (nullptr): chosen from the Message version attributes
  // (TransportVersion "20170715"/"20170714"/"2017071" → 2017071, "2023011" → 2023011), else
  // 2023011 with a warning.
  const Profile* profile = nullptr;
  // Inputs larger than this are refused (ResourceExhausted). Default: 4 MiB.
  size_t max_input_bytes = size_t{4} << 20;
  // Elements nested deeper than this are refused. Default: 64 (SCRIPT needs about 12).
  size_t max_depth = 64;
  // When set, also validate against the XSD set in this directory (transport.xsd as the
  // entry point; the licensed NCPDP schema is never shipped with RxFlow). Requires a
  // build with libxml2 (Unimplemented otherwise).
  std::string xsd_dir;
};

// Parses SCRIPT XML into a typed message. Structure errors (order, cardinality, lengths,
// codes) are errors; elements RxFlow does not model are warnings ("not mapped: dropped").
// InvalidArgument when the XML is malformed, refused (DTD/entities), or invalid.
StatusOr<Message> ReadXml(std::string_view xml, IssueList& issues, const ReadOptions& options = {});

// Validates SCRIPT XML against the profile's structure only (no typed model).
absl::Status ValidateXml(std::string_view xml, IssueList& issues, const ReadOptions& options = {});

// Validates against a user-supplied XSD set (libxml2). Errors carry the line number.
absl::Status ValidateWithXsd(std::string_view xml, const std::string& xsd_dir, IssueList& issues);

}  // namespace rxflow::script

#endif  // RXFLOW_SCRIPT_XML_H_
