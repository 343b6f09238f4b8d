// SPDX-License-Identifier: Apache-2.0
// File: rxflow/version.h
//
// The SDK's version. RxFlow follows semantic versioning for its public headers; the ABI is
// not promised across minor versions (build RxFlow with the same Abseil as the application).
#ifndef RXFLOW_VERSION_H_
#define RXFLOW_VERSION_H_

#define RXFLOW_VERSION_MAJOR 0
#define RXFLOW_VERSION_MINOR 1
#define RXFLOW_VERSION_PATCH 0
#define RXFLOW_VERSION_STRING "0.1.0"

#endif  // RXFLOW_VERSION_H_
