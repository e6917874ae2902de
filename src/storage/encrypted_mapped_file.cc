#include "storage/encrypted_mapped_file.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace keyward {
namespace {

// The mapped range a thread is copying from, and where to go when reading it faults.
struct MappingFaultGuard {
  sigjmp_buf jump;
  const char* lo;
  const char* hi;
};

// Read by the signal handler: initial-exec TLS is a plain %fs-relative load there (the dynamic
// model may call into the loader). Set only around one memcpy.
__attribute__((tls_model("initial-exec"))) thread_local MappingFaultGuard* t_fault_guard = nullptr;

struct sigaction g_previous_sigbus;  // written once, before our handler is installed

void OnSigbus(int sig, siginfo_t* info, void* context) {
  MappingFaultGuard* guard = t_fault_guard;
  const char* addr = static_cast<const char*>(info->si_addr);
  // si_code > 0: raised by the kernel for a fault (a sent SIGBUS carries a pid, not an address).
  if (guard != nullptr && info->si_code > 0 && addr >= guard->lo && addr < guard->hi) {
    t_fault_guard = nullptr;
    siglongjmp(guard->jump, 1);
  }
  // Not a fault of ours: do what the process did before we were installed.
  if ((g_previous_sigbus.sa_flags & SA_SIGINFO) != 0 && g_previous_sigbus.sa_sigaction != nullptr) {
    g_previous_sigbus.sa_sigaction(sig, info, context);
    return;
  }
  if ((g_previous_sigbus.sa_flags & SA_SIGINFO) == 0 && g_previous_sigbus.sa_handler != SIG_DFL &&
      g_previous_sigbus.sa_handler != SIG_IGN) {
    g_previous_sigbus.sa_handler(sig);
    return;
  }
  // The default action (a hardware SIGBUS cannot be ignored). Returning re-runs a faulting
  // access, which now ends the process as it would have without us; a sent signal is re-raised.
  signal(SIGBUS, SIG_DFL);
  if (info->si_code <= 0) raise(sig);
}

void InstallSigbusGuard() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = OnSigbus;
    // SA_NODEFER: SIGBUS stays unblocked in the handler, so leaving it with siglongjmp needs no
    // saved signal mask (sigsetjmp(…, 0): no sigprocmask syscall per read).
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous_sigbus);
  });
}

// Copies under the guard, which covers the whole mapping [map, map_end) (memcpy may load
// outside [src, src + n) within it). Nothing between sigsetjmp and the memcpy owns anything that
// a jump out would leak.
bool CopyFromMapping(char* dst, const char* src, size_t n, const char* map, const char* map_end) {
  MappingFaultGuard guard;
  guard.lo = map;
  guard.hi = map_end;
  if (sigsetjmp(guard.jump, 0) != 0) return false;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_fault_guard = &guard;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_fault_guard = nullptr;
  return true;
}

class MappedReadFile : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  MappedReadFile(std::unique_ptr<rocksdb::FSRandomAccessFile> file, const char* map, size_t size,
                 size_t prefix, std::unique_ptr<rocksdb::BlockAccessCipherStream> stream)
      : rocksdb::FSRandomAccessFileOwnerWrapper(std::move(file)),
        map_(map),
        size_(size),
        prefix_(prefix),
        stream_(std::move(stream)) {}
  ~MappedReadFile() override { munmap(const_cast<char*>(map_), size_); }

  // `offset` is logical (after the header); the stream works on physical offsets, as in
  // RocksDB's EncryptedRandomAccessFile.
  rocksdb::IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& options,
                         rocksdb::Slice* result, char* scratch,
                         rocksdb::IODebugContext* dbg) const override {
    const uint64_t logical_size = size_ - prefix_;
    if (n <= kMaxMappedRead && offset <= logical_size && n <= logical_size - offset &&
        CopyFromMapping(scratch, map_ + prefix_ + offset, n, map_, map_ + size_)) {
      rocksdb::Status st = stream_->Decrypt(prefix_ + offset, scratch, n);
      if (!st.ok()) return rocksdb::status_to_io_status(std::move(st));
      *result = rocksdb::Slice(scratch, n);
      return rocksdb::IOStatus::OK();
    }
    // Past the mapped end (a short read at the end of the file), a large read, or a fault:
    // pread through the stock reader, which reports end of file and errors as before.
    return target()->Read(offset, n, options, result, scratch, dbg);
  }

  // The wrapper would send these to the stock reader, past the mapping.
  rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs,
                              const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    for (size_t i = 0; i < num_reqs; ++i) {
      reqs[i].status =
          Read(reqs[i].offset, reqs[i].len, options, &reqs[i].result, reqs[i].scratch, dbg);
    }
    return rocksdb::IOStatus::OK();
  }

 private:
  const char* const map_;
  const size_t size_;  // mapped bytes, header included (> prefix_)
  const size_t prefix_;
  const std::unique_ptr<rocksdb::BlockAccessCipherStream> stream_;  // thread-safe
};

}  // namespace

bool MappedReadsEnabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("KEYWARD_MAPPED_READS");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

std::unique_ptr<rocksdb::FSRandomAccessFile> MapEncryptedFileForReads(
    const std::string& fname, const rocksdb::FileOptions& options,
    rocksdb::EncryptionProvider& provider, std::unique_ptr<rocksdb::FSRandomAccessFile> file) {
  if (!MappedReadsEnabled() || options.use_direct_reads || options.use_mmap_reads) return file;
  const size_t prefix = provider.GetPrefixLength();
  int fd = open(fname.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return file;
  struct stat st {};
  std::string header(prefix, '\0');
  void* map = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size > 0 && static_cast<uint64_t>(st.st_size) > prefix &&
      pread(fd, header.data(), prefix, 0) == static_cast<ssize_t>(prefix)) {
    map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  }
  close(fd);  // the mapping keeps the file
  if (map == MAP_FAILED) return file;
  const size_t size = static_cast<size_t>(st.st_size);
  // Block reads are random: without this a cold page would pull in its neighbours too.
  madvise(map, size, MADV_RANDOM);
  rocksdb::Slice header_slice(header);
  std::unique_ptr<rocksdb::BlockAccessCipherStream> stream;
  if (!provider.CreateCipherStream(fname, options, header_slice, &stream).ok() ||
      stream == nullptr) {
    munmap(map, size);
    return file;
  }
  InstallSigbusGuard();
  return std::make_unique<MappedReadFile>(std::move(file), static_cast<const char*>(map), size,
                                          prefix, std::move(stream));
}

bool CopyFromMappingForTest(char* dst, const char* src, size_t n) {
  InstallSigbusGuard();
  return CopyFromMapping(dst, src, n, src, src + n);
}

}  // namespace keyward
