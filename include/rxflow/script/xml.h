// SPDX-License-Identifier: Apache-2.0
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
// Reading refuses any DTD or entity declaration (no XXE, no entity expansion), names an
// unsupported version (10.6) or transaction in one error, and in lenient mode returns what
// could be read of an invalid message (see ReadOptions).
#ifndef RXFLOW_SCRIPT_XML_H_
#define RXFLOW_SCRIPT_XML_H_

#include <memory>
#include <optional>
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
  // Profile to read with; overrides `version`. Must outlive the call.
  const Profile* profile = nullptr;
  // Forces a built-in profile. Default (unset): chosen from the Message version attributes
  // (TransportVersion, or a `version` attribute, "2017071…" → 2017071, "2023011…" → 2023011);
  // a message with no version attribute, or one RxFlow does not know, is read as 2017071
  // (the version in production use until 2028) with a warning at /Message/@TransportVersion.
  std::optional<Version> version;
  // Lenient: a message with errors is still read as far as it goes, and returned (OK)
  // with its errors in `issues`; the caller decides what to do with it (the service's
  // pharmacy inbound route answers the sender). Malformed XML, a refused DTD, an input
  // over a limit, an unsupported SCRIPT version or transaction stay errors.
  // Default: strict (any error → no message).
  bool lenient = false;
  // The charset parameter of the Content-Type the message came with (HTTP's, for instance:
  // "ISO-8859-1"), unquoted; empty: none. As RFC 7303 orders them, a byte-order mark (or
  // UTF-16's first bytes) decides over it and it decides over the XML declaration; a
  // disagreement is a warning at "/", a charset RxFlow does not read an error (not-supported).
  std::string charset;
  // Inputs larger than this are refused (ResourceExhausted). Default: 4 MiB.
  size_t max_input_bytes = size_t{4} << 20;
  // Elements nested deeper than this are refused. Default: 64 (SCRIPT needs about 12).
  size_t max_depth = 64;
  // When set, also validate against the XSD set in this directory (transport.xsd as the
  // entry point; the licensed NCPDP schema is never shipped with RxFlow). Requires a
  // build with libxml2 (Unimplemented otherwise).
  std::string xsd_dir;
};

// The SCRIPT namespace some senders declare on 2017071 messages (accepted with a warning:
// NCPDP's 2017071 schema has no target namespace).
inline constexpr std::string_view kScriptNamespace = "http://www.ncpdp.org/schema/SCRIPT";

// Parses SCRIPT XML into a typed message. Structure errors (order, cardinality, lengths,
// codes) are errors; elements RxFlow does not model are warnings ("not mapped: dropped").
// InvalidArgument when the XML is malformed, refused (DTD/entities), or invalid (strict
// mode); ResourceExhausted over a limit; Unimplemented, with exactly one error, for a
// SCRIPT version before 2017071 (10.6, …) and for a SCRIPT transaction RxFlow does not
// handle ("transaction ClinicalInfoResponse is not supported by RxFlow").
//
// What real senders write is read: no version attributes (→ 2017071, warning), the SCRIPT
// namespace (warning; any other namespace is an error naming it), xmlns:xsi/xmlns:xsd
// declarations, dateTimes without a zone (warning; read as UTC) and fractions of any
// number of digits, DigitalSignature@Version.
StatusOr<Message> ReadXml(std::string_view xml, IssueList& issues, const ReadOptions& options = {});

// Reads only the Header of a SCRIPT message: the XML must be well-formed, within the
// limits, with a Message root; nothing is validated. For answering a message that was
// refused (the pharmacy inbound route's SCRIPT Error).
StatusOr<Header> ReadHeader(std::string_view xml, IssueList& issues,
                            const ReadOptions& options = {});

// Validates SCRIPT XML against the profile's structure only (no typed model).
absl::Status ValidateXml(std::string_view xml, IssueList& issues, const ReadOptions& options = {});

// Validates against a user-supplied XSD set (libxml2). Errors carry the line number.
absl::Status ValidateWithXsd(std::string_view xml, const std::string& xsd_dir, IssueList& issues);

}  // namespace rxflow::script

#endif  // RXFLOW_SCRIPT_XML_H_
