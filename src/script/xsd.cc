// SPDX-License-Identifier: Apache-2.0
// Optional validation against a user-supplied XSD set (NCPDP's schema is licensed and is
// never shipped with RxFlow). Uses libxml2 with network access and entity substitution off.
#include <cstdio>
#include <mutex>
#include <string>

#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#ifdef RXFLOW_HAVE_LIBXML2
#include <libxml/parser.h>
#include <libxml/xmlschemas.h>
#endif

namespace rxflow::script {

#ifdef RXFLOW_HAVE_LIBXML2
namespace {

struct ErrorSink {
  IssueList* issues;
  size_t count = 0;
};

void OnStructuredError(void* ctx, xmlError* error) {
  auto* sink = static_cast<ErrorSink*>(ctx);
  if (!error || !sink) return;
  std::string msg = error->message ? error->message : "schema validation error";
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  std::string path = error->line > 0 ? rxflow::internal::Cat("line ", error->line) : "/";
  if (error->level == XML_ERR_WARNING) {
    sink->issues->Warning(path, IssueCode::kStructure, rxflow::internal::Cat("XSD: ", msg));
  } else {
    sink->issues->Error(path, IssueCode::kStructure, rxflow::internal::Cat("XSD: ", msg));
    ++sink->count;
  }
}

void Silent(void*, const char*, ...) {}

}  // namespace

absl::Status ValidateWithXsd(std::string_view xml, const std::string& xsd_dir, IssueList& issues) {
  std::string entry = xsd_dir + "/transport.xsd";
  if (std::FILE* f = std::fopen(entry.c_str(), "rb")) {
    std::fclose(f);
  } else {
    return absl::NotFoundError(
        rxflow::internal::Cat("cannot load the XSD set at ", xsd_dir, " (no transport.xsd)"));
  }
  // libxml2 must be initialised once before use from several threads.
  static std::once_flag init;
  std::call_once(init, [] { xmlInitParser(); });
  // libxml2 prints loader warnings on stderr by default; RxFlow reports them as issues.
  xmlSetGenericErrorFunc(nullptr, Silent);
  ErrorSink sink{&issues};
  xmlSchemaParserCtxtPtr pctx = xmlSchemaNewParserCtxt(entry.c_str());
  if (!pctx) return absl::NotFoundError(rxflow::internal::Cat("cannot open XSD ", entry));
  xmlSchemaSetParserStructuredErrors(pctx, OnStructuredError, &sink);
  xmlSchemaPtr schema = xmlSchemaParse(pctx);
  xmlSchemaFreeParserCtxt(pctx);
  if (!schema) {
    return absl::NotFoundError(
        rxflow::internal::Cat("cannot load the XSD set at ", xsd_dir, " (entry transport.xsd)"));
  }
  size_t schema_errors = sink.count;
  xmlDocPtr doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "message.xml", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOBLANKS);
  absl::Status result = absl::OkStatus();
  if (!doc) {
    result = absl::InvalidArgumentError("XSD: the document is not well-formed");
  } else {
    xmlSchemaValidCtxtPtr vctx = xmlSchemaNewValidCtxt(schema);
    xmlSchemaSetValidStructuredErrors(vctx, OnStructuredError, &sink);
    int rc = xmlSchemaValidateDoc(vctx, doc);
    xmlSchemaFreeValidCtxt(vctx);
    xmlFreeDoc(doc);
    if (rc != 0 || sink.count > schema_errors) {
      result = absl::InvalidArgumentError("XSD validation failed");
    }
  }
  xmlSchemaFree(schema);
  return result;
}

#else

absl::Status ValidateWithXsd(std::string_view, const std::string&, IssueList&) {
  return absl::UnimplementedError("this RxFlow build has no libxml2: XSD validation unavailable");
}

#endif

}  // namespace rxflow::script
