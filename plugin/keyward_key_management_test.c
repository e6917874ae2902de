/* The keyward_key_management plugin's latest-version refresh when keyward stalls: the plugin's own
 * C code (included below, with a 1 s I/O timeout) against a fake keyward on a Unix socket that
 * answers, or accepts and never answers.
 *
 * What a user would notice without the failure cache: every InnoDB thread asking for the latest
 * key version waits the full I/O timeout again, one after the other, for as long as keyward
 * stalls; with it, one thread waits once per failure period, the rest get the known version at
 * once, and the log says so once per period. Exit status 0 when every check holds. */
#define KW_IO_TIMEOUT_S 1
#define KW_FAILURE_TTL_NS 1500000000LL
#include "../plugin/keyward_key_management.c"

#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>

static int failures;
#define CHECK(cond, ...)                  \
  do {                                    \
    if (!(cond)) {                        \
      printf("FAIL line %d: ", __LINE__); \
      printf(__VA_ARGS__);                \
      printf("\n");                       \
      failures++;                         \
    }                                     \
  } while (0)

/* The fake keyward. */
static int fake_listen_fd = -1;
static atomic_int fake_stall;       /* 1: accept and never answer */
static atomic_int fake_latest;      /* the version answered */
static atomic_int fake_connections; /* accepted since start */
static atomic_int fake_stop;
static int held_fds[256];
static int held_count;

static void* fake_keyward(void* arg) {
  (void)arg;
  while (!atomic_load(&fake_stop)) {
    struct pollfd p = {fake_listen_fd, POLLIN, 0};
    int conn;
    if (poll(&p, 1, 20) != 1) continue;
    conn = accept(fake_listen_fd, NULL, NULL);
    if (conn < 0) continue;
    atomic_fetch_add(&fake_connections, 1);
    if (atomic_load(&fake_stall)) {
      if (held_count < 256)
        held_fds[held_count++] = conn; /* held open, never answered */
      else
        close(conn);
      continue;
    }
    {
      unsigned char req[KW_MK_REQUEST_SIZE], resp[KW_MK_RESPONSE_HEADER_SIZE];
      if (kw_read_fully(conn, req, sizeof(req)) == 0) {
        memcpy(resp, KW_MK_RESPONSE_MAGIC, KW_MK_MAGIC_SIZE);
        kw_store_u32(resp + 4, KW_MK_STATUS_OK);
        kw_store_u32(resp + 8, (unsigned int)atomic_load(&fake_latest));
        kw_store_u32(resp + 12, 0);
        (void)!write(conn, resp, sizeof(resp));
      }
      close(conn);
    }
  }
  return NULL;
}

static double elapsed_ms(long long since_ns) { return (double)(kw_now_ns() - since_ns) / 1e6; }

struct caller {
  pthread_t thread;
  unsigned int version;
  double ms;
};

static void* call_latest(void* arg) {
  struct caller* c = (struct caller*)arg;
  long long t0 = kw_now_ns();
  c->version = kw_get_latest_key_version(1);
  c->ms = elapsed_ms(t0);
  return NULL;
}

static int count_warnings(const char* log_path) {
  char line[1024];
  int n = 0;
  FILE* f = fopen(log_path, "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strstr(line, "[Warning] keyward_key_management: keyward did not give the latest") != NULL)
      n++;
  }
  fclose(f);
  return n;
}

int main(void) {
  char dir[] = "/tmp/kw-plugin-test-XXXXXX";
  char sock_path[128], log_path[128];
  struct sockaddr_un addr;
  pthread_t server;
  struct caller callers[8];
  int i, saved_stderr, log_fd;
  double max_ms = 0, slow = 0;
  long long t0;

  if (mkdtemp(dir) == NULL) return 2;
  snprintf(sock_path, sizeof(sock_path), "%s/keys.sock", dir);
  snprintf(log_path, sizeof(log_path), "%s/stderr.log", dir);
  fake_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, sock_path, strlen(sock_path));
  if (bind(fake_listen_fd, (struct sockaddr*)&addr, sizeof(addr)) != 0 ||
      listen(fake_listen_fd, 64) != 0) {
    perror("fake keyward");
    return 2;
  }
  atomic_store(&fake_latest, 4);
  pthread_create(&server, NULL, fake_keyward, NULL);
  /* The plugin's log lines go to stderr: into a file, to count them. */
  fflush(stderr);
  saved_stderr = dup(STDERR_FILENO);
  log_fd = open(log_path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  dup2(log_fd, STDERR_FILENO);

  kw_socket_path = sock_path;
  CHECK(kw_init(NULL) == 0, "init with keyward answering must succeed");
  CHECK(kw_get_latest_key_version(1) == 4, "latest after init is 4");

  /* keyward stalls; the known version ages past its 1 s refresh interval. */
  atomic_store(&fake_stall, 1);
  usleep(1100 * 1000);
  atomic_store(&fake_connections, 0);
  for (i = 0; i < 8; i++) pthread_create(&callers[i].thread, NULL, call_latest, &callers[i]);
  for (i = 0; i < 8; i++) {
    pthread_join(callers[i].thread, NULL);
    CHECK(callers[i].version == 4, "caller %d got %u, not the known version 4", i,
          callers[i].version);
    if (callers[i].ms > max_ms) max_ms = callers[i].ms;
    if (callers[i].ms > 500) slow++;
  }
  printf(
      "8 concurrent callers while keyward stalls: %d connection(s), %.0f waited > 0.5 s, "
      "longest %.0f ms\n",
      atomic_load(&fake_connections), slow, max_ms);
  CHECK(atomic_load(&fake_connections) == 1, "one refresh for 8 callers, not %d",
        atomic_load(&fake_connections));
  CHECK(slow <= 1, "only the refreshing caller waits; %.0f waited", slow);
  CHECK(max_ms >= 900 && max_ms < 3000, "the refresh waits the 1 s timeout (%.0f ms)", max_ms);

  /* Within the failure period: 20 calls, none waits, none asks. */
  t0 = kw_now_ns();
  for (i = 0; i < 20; i++) CHECK(kw_get_latest_key_version(1) == 4, "known version in period");
  printf("20 calls within the failure period: %.1f ms in all, %d new connection(s)\n",
         elapsed_ms(t0), atomic_load(&fake_connections) - 1);
  CHECK(elapsed_ms(t0) < 200, "20 calls took %.0f ms", elapsed_ms(t0));
  CHECK(atomic_load(&fake_connections) == 1, "no refresh within the failure period");
  fflush(stderr);
  CHECK(count_warnings(log_path) == 1, "one warning for the first period, not %d",
        count_warnings(log_path));

  /* The period over, keyward still stalled: one more refresh, one more warning. */
  usleep(1600 * 1000);
  CHECK(kw_get_latest_key_version(1) == 4, "known version after a second failure");
  CHECK(atomic_load(&fake_connections) == 2, "one refresh after the period, not %d",
        atomic_load(&fake_connections) - 1);
  fflush(stderr);
  CHECK(count_warnings(log_path) == 2, "a warning per period: %d", count_warnings(log_path));

  /* keyward answers again with a newer version: taken once the period is over. */
  atomic_store(&fake_stall, 0);
  atomic_store(&fake_latest, 6);
  CHECK(kw_get_latest_key_version(1) == 4, "still the known version within the period");
  usleep(1600 * 1000);
  CHECK(kw_get_latest_key_version(1) == 6, "the new version once keyward answers");
  CHECK(kw_get_latest_key_version(1) == 6, "and cached");

  kw_deinit(NULL);
  fflush(stderr);
  dup2(saved_stderr, STDERR_FILENO);
  {
    /* The log lines, for whoever reads the test's output. */
    char line[1024];
    FILE* f = fopen(log_path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) printf("plugin log: %s", line);
    if (f != NULL) fclose(f);
  }
  atomic_store(&fake_stop, 1);
  pthread_join(server, NULL);
  for (i = 0; i < held_count; i++) close(held_fds[i]);
  close(fake_listen_fd);
  unlink(sock_path);
  unlink(log_path);
  rmdir(dir);
  printf(failures == 0 ? "PASS\n" : "%d check(s) FAILED\n", failures);
  return failures == 0 ? 0 : 1;
}
