/* keyward_key_management: a MariaDB encryption plugin that takes its keys from keyward.
 *
 * mariadbd asks for keys through get_latest_key_version/get_key; this plugin asks keyward's
 * MariadbKeyService over the Unix socket named by keyward_key_management_socket (wire format in
 * src/mariadb/key_protocol_wire.h). Encryption itself is the server's default AES: this plugin
 * only manages keys.
 *
 * Keys are cached in an anonymous mapping that is locked in memory, excluded from core dumps
 * and wiped on deinit (explicit_bzero). A (key id, version) key never changes, so it is cached
 * for the life of the process. The latest version is re-asked at most once a second, so a new
 * keyward data key reaches InnoDB's rotation within a second. One thread asks at a time; the
 * others get the version already known meanwhile. A refresh that fails (keyward stalled: each
 * attempt may wait the full I/O timeout) is not retried for KW_FAILURE_TTL_NS: InnoDB's
 * background threads then get the known version at once instead of piling up behind the socket,
 * and the log says so once per such period.
 *
 * Failing closed: at init the plugin asks keyward for the latest version; no answer → init fails,
 * and with keyward_key_management=FORCE in the option file mariadbd refuses to start. A key
 * version not in the cache that keyward does not answer for → ENCRYPTION_KEY_VERSION_INVALID, so
 * the page cannot be read. Only a latest version already known is kept when a refresh fails:
 * InnoDB aborts when it cannot get a latest version mid-write, and keyward shuts mariadbd down
 * cleanly (with the cached keys) when it withdraws them.
 */
#include <errno.h>
#include <mysql/plugin_encryption.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mariadb/key_protocol_wire.h"

#define KW_CACHE_SLOTS 512
#define KW_LATEST_TTL_NS 1000000000LL
/* Overridable so the plugin's test (keyward_key_management_test.c) runs in seconds. */
#ifndef KW_IO_TIMEOUT_S
#define KW_IO_TIMEOUT_S 5
#endif
#ifndef KW_FAILURE_TTL_NS
#define KW_FAILURE_TTL_NS 1000000000LL
#endif

struct kw_cached_key {
  unsigned int key_id;
  unsigned int version;
  unsigned int used;
  unsigned char key[KW_MK_KEY_SIZE];
};

static char* kw_socket_path;
static pthread_mutex_t kw_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct kw_cached_key* kw_cache; /* KW_CACHE_SLOTS entries, mmap'd */
static size_t kw_cache_bytes;
static unsigned int kw_cache_next; /* round-robin victim once full */
static unsigned int kw_latest;     /* 0: unknown */
static long long kw_latest_fetched_ns;
static int kw_refreshing;              /* a thread is asking keyward for the latest version */
static long long kw_refresh_failed_ns; /* when the last refresh failed; 0: it did not */

static long long kw_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void kw_store_u32(unsigned char* p, unsigned int v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static unsigned int kw_load_u32(const unsigned char* p) {
  return (unsigned int)p[0] | (unsigned int)p[1] << 8 | (unsigned int)p[2] << 16 |
         (unsigned int)p[3] << 24;
}

static int kw_read_fully(int fd, unsigned char* buf, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

/* One request/answer with keyward. Returns 0 and fills *status, *latest and (for an OK GET_KEY)
 * key; -1 when keyward does not answer or answers malformed. No lock held. */
static int kw_ask(unsigned int op, unsigned int key_id, unsigned int version, unsigned int* status,
                  unsigned int* latest, unsigned char key[KW_MK_KEY_SIZE]) {
  struct sockaddr_un addr;
  unsigned char req[KW_MK_REQUEST_SIZE];
  unsigned char hdr[KW_MK_RESPONSE_HEADER_SIZE];
  struct timeval tv = {KW_IO_TIMEOUT_S, 0};
  unsigned int key_len;
  int fd, rc = -1;
  size_t path_len = kw_socket_path ? strlen(kw_socket_path) : 0;

  if (path_len == 0 || path_len >= sizeof(addr.sun_path)) return -1;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, kw_socket_path, path_len);
  if (connect(fd, (struct sockaddr*)&addr, sizeof(addr)) != 0) goto out;
  memcpy(req, KW_MK_REQUEST_MAGIC, KW_MK_MAGIC_SIZE);
  kw_store_u32(req + 4, op);
  kw_store_u32(req + 8, key_id);
  kw_store_u32(req + 12, version);
  if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) goto out;
  if (kw_read_fully(fd, hdr, sizeof(hdr)) != 0) goto out;
  if (memcmp(hdr, KW_MK_RESPONSE_MAGIC, KW_MK_MAGIC_SIZE) != 0) goto out;
  *status = kw_load_u32(hdr + 4);
  *latest = kw_load_u32(hdr + 8);
  key_len = kw_load_u32(hdr + 12);
  if (*status == KW_MK_STATUS_OK && op == KW_MK_OP_GET_KEY) {
    if (key_len != KW_MK_KEY_SIZE) goto out;
    if (kw_read_fully(fd, key, KW_MK_KEY_SIZE) != 0) {
      explicit_bzero(key, KW_MK_KEY_SIZE);
      goto out;
    }
  } else if (key_len != 0) {
    goto out;
  }
  rc = 0;
out:
  close(fd);
  return rc;
}

/* Caller holds kw_mutex. */
static struct kw_cached_key* kw_find(unsigned int key_id, unsigned int version) {
  unsigned int i;
  /* After kw_deinit (or a failed kw_init) there is no cache: a late caller must not touch it. */
  if (kw_cache == NULL) return NULL;
  for (i = 0; i < KW_CACHE_SLOTS; i++) {
    if (kw_cache[i].used && kw_cache[i].key_id == key_id && kw_cache[i].version == version)
      return &kw_cache[i];
  }
  return NULL;
}

/* Caller holds kw_mutex. */
static void kw_insert(unsigned int key_id, unsigned int version, const unsigned char* key) {
  struct kw_cached_key* slot;
  unsigned int i;
  if (kw_cache == NULL) return; /* deinitialised: the key is used once, not cached */
  slot = kw_find(key_id, version);
  if (slot == NULL) {
    for (i = 0; i < KW_CACHE_SLOTS && slot == NULL; i++) {
      if (!kw_cache[i].used) slot = &kw_cache[i];
    }
  }
  if (slot == NULL) {
    slot = &kw_cache[kw_cache_next];
    kw_cache_next = (kw_cache_next + 1) % KW_CACHE_SLOTS;
  }
  explicit_bzero(slot, sizeof(*slot));
  slot->key_id = key_id;
  slot->version = version;
  slot->used = 1;
  memcpy(slot->key, key, KW_MK_KEY_SIZE);
}

static void kw_note_latest(unsigned int latest) {
  if (latest == 0) return;
  kw_latest = latest;
  kw_latest_fetched_ns = kw_now_ns();
}

static unsigned int kw_get_latest_key_version(unsigned int key_id) {
  unsigned int status = 0, latest = 0, cached;
  long long now = kw_now_ns();
  int ok;
  (void)key_id; /* every MariaDB key id follows keyward's current data key */
  pthread_mutex_lock(&kw_mutex);
  cached = kw_latest;
  if (cached != 0 && now - kw_latest_fetched_ns < KW_LATEST_TTL_NS) {
    pthread_mutex_unlock(&kw_mutex);
    return cached;
  }
  /* Recently failed, or another thread is asking: no new wait on the socket. */
  if ((kw_refresh_failed_ns != 0 && now - kw_refresh_failed_ns < KW_FAILURE_TTL_NS) ||
      (kw_refreshing && cached != 0)) {
    pthread_mutex_unlock(&kw_mutex);
    return cached != 0 ? cached : ENCRYPTION_KEY_VERSION_INVALID;
  }
  kw_refreshing = 1;
  pthread_mutex_unlock(&kw_mutex);

  ok = kw_ask(KW_MK_OP_LATEST, key_id, 0, &status, &latest, NULL) == 0 &&
       status == KW_MK_STATUS_OK && latest != 0;

  pthread_mutex_lock(&kw_mutex);
  kw_refreshing = 0;
  if (ok) {
    kw_note_latest(latest);
    kw_refresh_failed_ns = 0;
  } else {
    kw_refresh_failed_ns = kw_now_ns();
    cached = kw_latest;
  }
  pthread_mutex_unlock(&kw_mutex);
  if (ok) return latest;
  /* Once per failure period: each period starts with exactly one failed attempt. */
  fprintf(stderr,
          "[Warning] keyward_key_management: keyward did not give the latest key version "
          "(socket %s, waited up to %d s); using version %u and not asking again for %lld ms: "
          "check that keyward serve runs this cluster\n",
          kw_socket_path ? kw_socket_path : "(unset)", KW_IO_TIMEOUT_S, cached,
          (long long)(KW_FAILURE_TTL_NS / 1000000LL));
  /* See the header: a known latest version outlives a failed refresh. */
  return cached != 0 ? cached : ENCRYPTION_KEY_VERSION_INVALID;
}

static unsigned int kw_get_key(unsigned int key_id, unsigned int version, unsigned char* dst,
                               unsigned int* buflen) {
  unsigned char key[KW_MK_KEY_SIZE];
  unsigned int status = 0, latest = 0;
  struct kw_cached_key* hit;
  int found = 0;

  pthread_mutex_lock(&kw_mutex);
  hit = kw_find(key_id, version);
  if (hit != NULL) {
    memcpy(key, hit->key, KW_MK_KEY_SIZE);
    found = 1;
  }
  pthread_mutex_unlock(&kw_mutex);
  if (!found) {
    if (kw_ask(KW_MK_OP_GET_KEY, key_id, version, &status, &latest, key) != 0 ||
        status != KW_MK_STATUS_OK) {
      explicit_bzero(key, sizeof(key));
      if (status != KW_MK_STATUS_UNKNOWN_VERSION) {
        fprintf(stderr,
                "[ERROR] keyward_key_management: keyward did not give key %u version %u "
                "(socket %s); check that keyward serve runs this cluster\n",
                key_id, version, kw_socket_path ? kw_socket_path : "(unset)");
      }
      return ENCRYPTION_KEY_VERSION_INVALID;
    }
    pthread_mutex_lock(&kw_mutex);
    kw_insert(key_id, version, key);
    kw_note_latest(latest);
    pthread_mutex_unlock(&kw_mutex);
  }
  if (dst == NULL || *buflen < KW_MK_KEY_SIZE) {
    *buflen = KW_MK_KEY_SIZE;
    explicit_bzero(key, sizeof(key));
    return ENCRYPTION_KEY_BUFFER_TOO_SMALL;
  }
  memcpy(dst, key, KW_MK_KEY_SIZE);
  *buflen = KW_MK_KEY_SIZE;
  explicit_bzero(key, sizeof(key));
  return 0;
}

static int kw_init(void* p) {
  unsigned int status = 0, latest = 0;
  void* mem;
  (void)p;
  if (kw_socket_path == NULL || kw_socket_path[0] == '\0') {
    fprintf(stderr,
            "[ERROR] keyward_key_management: keyward_key_management_socket is not set; "
            "mariadbd must be started by keyward\n");
    return 1;
  }
  kw_cache_bytes = sizeof(struct kw_cached_key) * KW_CACHE_SLOTS;
  mem = mmap(NULL, kw_cache_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  /* Best effort: keys stay out of swap and core dumps where the limits allow it. */
  (void)mlock(mem, kw_cache_bytes);
  (void)madvise(mem, kw_cache_bytes, MADV_DONTDUMP);
  kw_cache = (struct kw_cached_key*)mem;
  if (kw_ask(KW_MK_OP_LATEST, 1, 0, &status, &latest, NULL) != 0 || status != KW_MK_STATUS_OK ||
      latest == 0) {
    fprintf(stderr,
            "[ERROR] keyward_key_management: keyward does not answer on %s; refusing to start "
            "without the cluster's keys (start or resume the cluster through keyward)\n",
            kw_socket_path);
    munmap(mem, kw_cache_bytes);
    kw_cache = NULL;
    return 1;
  }
  pthread_mutex_lock(&kw_mutex);
  kw_note_latest(latest);
  pthread_mutex_unlock(&kw_mutex);
  return 0;
}

static int kw_deinit(void* p) {
  (void)p;
  pthread_mutex_lock(&kw_mutex);
  if (kw_cache != NULL) {
    explicit_bzero(kw_cache, kw_cache_bytes);
    munlock(kw_cache, kw_cache_bytes);
    munmap(kw_cache, kw_cache_bytes);
    kw_cache = NULL;
  }
  kw_latest = 0;
  kw_refresh_failed_ns = 0;
  pthread_mutex_unlock(&kw_mutex);
  return 0;
}

static MYSQL_SYSVAR_STR(socket, kw_socket_path, PLUGIN_VAR_RQCMDARG | PLUGIN_VAR_READONLY,
                        "Unix socket where keyward serves this cluster's keys", NULL, NULL, "");

static struct st_mysql_sys_var* kw_system_variables[] = {MYSQL_SYSVAR(socket), NULL};

static struct st_mariadb_encryption kw_descriptor = {
    MariaDB_ENCRYPTION_INTERFACE_VERSION,
    kw_get_latest_key_version,
    kw_get_key,
    NULL, /* crypt_ctx_size: the server's default AES */
    NULL,
    NULL,
    NULL,
    NULL};

maria_declare_plugin(keyward_key_management){
    MariaDB_ENCRYPTION_PLUGIN,
    &kw_descriptor,
    "keyward_key_management",
    "keyward",
    "Keys from keyward (customer-managed keys)",
    PLUGIN_LICENSE_GPL,
    kw_init,
    kw_deinit,
    0x0100,
    NULL,
    kw_system_variables,
    "1.0",
    MariaDB_PLUGIN_MATURITY_STABLE} maria_declare_plugin_end;
