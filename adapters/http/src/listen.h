// SPDX-License-Identifier: Apache-2.0
// Binding and serving an httplib::Server on its own thread (internal to the HTTP library).
#ifndef RXFLOW_HTTP_SRC_LISTEN_H_
#define RXFLOW_HTTP_SRC_LISTEN_H_

#include <chrono>
#include <string>
#include <thread>

#include <httplib.h>

#include "rxflow/internal/strcat.h"
#include "rxflow/status.h"

namespace rxflow::http::internal {

// Binds `host:port` (port 0: any free port, returned in `bound`), then serves on `thread`.
// Returns once the server accepts connections.
inline Status Listen(httplib::Server& server, const std::string& host, int port, int& bound,
                     std::thread& thread) {
  using rxflow::internal::Cat;
  if (port == 0) {
    bound = server.bind_to_any_port(host);
    if (bound <= 0) return absl::UnavailableError(Cat("cannot bind ", host));
  } else {
    if (!server.bind_to_port(host, port)) {
      return absl::UnavailableError(Cat("cannot listen on ", host, ":", port, " (in use?)"));
    }
    bound = port;
  }
  thread = std::thread([&server] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return absl::OkStatus();
}

// Stops a server started with Listen and joins its thread (idempotent).
inline void StopListening(httplib::Server& server, std::thread& thread) {
  if (thread.joinable()) {
    server.stop();
    thread.join();
  }
}

}  // namespace rxflow::http::internal

#endif  // RXFLOW_HTTP_SRC_LISTEN_H_
