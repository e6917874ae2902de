#pragma once
// Ends a server's idle keep-alive connections at shutdown. cpp-httplib's stop() closes only the
// listening socket; each worker holding a keep-alive connection waits out the idle timeout (15 s)
// before its thread can be joined, so SIGTERM took 13-15 s whenever a client had connected.

namespace keyward {

// shutdown(SHUT_RD) on every connected socket of this process whose local port is `port`, except
// `keep_fd`: a worker waiting for the next request sees end of file at once, and one still
// answering a request can finish writing its reply. Returns how many were shut down.
int ShutdownConnectionsOnPort(int port, int keep_fd);

}  // namespace keyward
