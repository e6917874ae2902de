#include "mariadb_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>

namespace keyward {

pid_t SpawnHeldMariadbd(const std::vector<std::string>& args,
                        const std::function<void(pid_t)>& allow) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  int go[2];
  if (pipe2(go, O_CLOEXEC) != 0) return -1;
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    char b;
    if (read(go[0], &b, 1) != 1) _exit(127);
    close_range(3, ~0U, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(go[0]);
  if (pid > 0 && allow) allow(pid);
  char b = 1;
  if (pid > 0 && write(go[1], &b, 1) != 1) perror("write");
  close(go[1]);
  return pid;
}

}  // namespace keyward
