#pragma once
// How the test tools (mariadb_keyd, mariadb_backup_tool, mariadb_galera_tool) start a mariadbd
// without keyward's supervisor: forked, held before exec until `allow(pid)` has run (so the key
// service knows the pid before the plugin's first request), nothing of the tool's but stdio
// inherited, and killed (SIGTERM) when the tool dies. Test-only.

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace keyward {

// `args`: MariadbdArgv(spec) plus any extra arguments. Returns the pid, or -1 (errno set).
pid_t SpawnHeldMariadbd(const std::vector<std::string>& args,
                        const std::function<void(pid_t)>& allow);

}  // namespace keyward
