// SPDX-License-Identifier: Apache-2.0
// Private: the routing envelope of a SCRIPT Header, each element by its path under Message.
// SCRIPT → FHIR keeps it from a message it reads (an answer's Task inputs, a request's
// script-element extensions); FHIR → SCRIPT compares what was kept with the header it writes
// (docs/mapping.md §2.1, §4.1).
#ifndef RXFLOW_SRC_MAPPING_ROUTING_HEADER_H_
#define RXFLOW_SRC_MAPPING_ROUTING_HEADER_H_

#include <string>
#include <string_view>

#include "rxflow/script/model.h"

namespace rxflow::mapping {

struct RoutingElement {
  std::string_view path;  // under Message: "Header/To", "Header/To/@Qualifier", ...
  std::string script::Header::*member;
};

inline constexpr RoutingElement kRoutingEnvelope[] = {
    {"Header/To", &script::Header::to},
    {"Header/To/@Qualifier", &script::Header::to_qualifier},
    {"Header/From", &script::Header::from},
    {"Header/From/@Qualifier", &script::Header::from_qualifier},
    {"Header/SenderSoftware/SenderSoftwareDeveloper", &script::Header::sender_software_developer},
    {"Header/SenderSoftware/SenderSoftwareProduct", &script::Header::sender_software_product},
    {"Header/SenderSoftware/SenderSoftwareVersionRelease",
     &script::Header::sender_software_version_release}};

// RelatesToMessageID, kept with the envelope when nothing else names the related message.
inline constexpr RoutingElement kRelatesTo = {"Header/RelatesToMessageID",
                                              &script::Header::relates_to_message_id};

}  // namespace rxflow::mapping

#endif  // RXFLOW_SRC_MAPPING_ROUTING_HEADER_H_
