// The explorer's HTTP server: cpp-httplib parses the requests and Explorer::handle
// answers them, so that this file holds no HTTP logic of its own.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "imagescore/core/error.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/serve/serve.hpp"

namespace imagescore {

void serve_explorer(const Explorer& explorer, const ServeAddress& address,
                    const std::function<void(const std::string& url)>& on_listening) {
  if (address.port < 0 || address.port > 65535) fail_option("port", "must be from 0 to 65535");
  httplib::Server server;
  const auto answer = [&explorer](const httplib::Request& req, httplib::Response& res) {
    ExplorerRequest request;
    request.method = req.method;
    request.path = req.path;
    // A repeated parameter keeps its first value.
    for (const auto& [key, value] : req.params) request.params.emplace(key, value);
    request.host = req.get_header_value("Host");
    request.body = req.body;
    ExplorerResponse response = explorer.handle(request);
    res.status = response.status;
    for (const auto& [name, value] : response.headers) res.set_header(name, value);
    if (!response.content_type.empty()) res.set_content(std::move(response.body), response.content_type);
  };
  // Every path goes to the explorer, which knows its routes; other methods get its 405.
  server.Get(".*", answer);
  server.Post(".*", answer);
  server.Put(".*", answer);
  server.Delete(".*", answer);
  server.Patch(".*", answer);
  server.Options(".*", answer);
  // httplib's own refusals (a malformed request line, an oversized body or header) as JSON.
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty())
      res.set_content("{\"error\":\"HTTP status " + std::to_string(res.status) + "\"}", "application/json");
  });
  server.set_payload_max_length(kMaxRequestBody);
  // A thumbnail is one small write: without TCP_NODELAY, Nagle's algorithm and delayed
  // acknowledgements held each for 40 ms (147 requests/s). A page of thumbnails reuses
  // its connections.
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(1000);
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);

  int port = address.port;
  if (port == 0) port = server.bind_to_any_port(address.host);
  else if (!server.bind_to_port(address.host, port)) port = -1;
  if (port < 0) fail(address.host + ":" + std::to_string(address.port), "cannot listen there (address in use or not this machine's?)");

  // Ctrl-C only sets a flag (core/progress.hpp): a watcher turns it into a clean stop.
  std::atomic<bool> done{false};
  std::thread watcher([&server, &done] {
    while (!done && !interrupt_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  const bool ipv6 = address.host.find(':') != std::string::npos;
  on_listening("http://" + (ipv6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(port) + "/");
  server.listen_after_bind();
  // listen_after_bind returns on stop() or a failed accept loop: end the watcher either way.
  done = true;
  watcher.join();
}

}  // namespace imagescore
