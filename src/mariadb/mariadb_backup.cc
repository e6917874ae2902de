#include "mariadb/mariadb_backup.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "mariadb/child_process.h"
#include "mariadb/key_service.h"
#include "mariadb/os_account.h"
#include "storage/key_dictionary.h"
#include "util/bytes.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxBackupMyCnf = 64 << 10;

// The database account mariadb-backup connects as: the OS user's unix_socket account that
// InitializeDataDir creates (mariadbd's own account when it has one, which mariadb-backup then
// runs as; root when keyward runs as root without one).
std::string BackupSocketUser(const MariadbOsAccount& run_as) {
  if (run_as.drop) return run_as.name;
  if (geteuid() == 0) return "root";
  const char* user = getenv("USER");
  return user != nullptr && *user != '\0' ? user : "mysql";
}

// Allows a child's pid on the key service for as long as it lives.
class AllowedPid {
 public:
  AllowedPid(MariadbKeyService& keys, pid_t pid) : keys_(keys) { keys_.SetBootstrapPid(pid); }
  ~AllowedPid() { keys_.SetBootstrapPid(0); }
  AllowedPid(const AllowedPid&) = delete;
  AllowedPid& operator=(const AllowedPid&) = delete;

 private:
  MariadbKeyService& keys_;
};

// Reads until `buf` is full or EOF; the bytes read.
absl::StatusOr<size_t> FillFromChild(ChildProcess& child, SecretBytes& buf) {
  size_t got = 0;
  while (got < buf.size()) {
    ASSIGN_OR_RETURN(size_t n,
                     child.ReadStdout(reinterpret_cast<char*>(buf.data()) + got, buf.size() - got));
    if (n == 0) break;
    got += n;
  }
  return got;
}

// Every data key of `dict`, sharing the dictionary's wiped key memory (no copy).
void AddDataKeys(const KeyDictionary& dict, BackupManifest& m) {
  // The current key first: ids only grow, so it is among the ids read after it.
  m.current_data_key = dict.Current()->id;
  for (uint32_t id : dict.DataKeyIds()) {
    std::shared_ptr<const DataKey> k = dict.Find(id);
    if (!k) continue;
    BackupDataKey d;
    d.id = id;
    d.created_unix = k->created_unix;
    d.key = std::shared_ptr<const SecretBytes>(k, &k->key);
    m.data_keys.push_back(std::move(d));
  }
}

absl::StatusOr<BackupSummary> StreamBackup(const MariadbBackupJob& job, MariadbBackupStart start,
                                           MariadbKeyService& keys, BackupDestination& dest,
                                           const BackupProgress& progress) {
  const std::string work_dir = absl::StrCat(job.instance.run_dir, "/backup-", job.backup_id);
  std::error_code ec;
  fs::remove_all(work_dir, ec);
  RETURN_IF_ERROR(MakeDirs(work_dir, 0700));
  // mariadb-backup (as the account, when mariadbd has one) writes its bookkeeping there.
  RETURN_IF_ERROR(GiveDirToAccount(work_dir, job.instance.run_as, false));
  struct RemoveWorkDir {
    std::string dir;
    ~RemoveWorkDir() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } remove_work_dir{work_dir};

  SecretBytes key = std::move(start.key);
  BackupManifest m = std::move(start.manifest);

  // --defaults-file must come first. The server's own option file gives mariadb-backup the
  // datadir; it takes the plugin and its key socket from the running server.
  std::vector<std::string> argv = {
      job.tools.mariadb_backup,
      absl::StrCat("--defaults-file=", MariadbOptionFilePath(job.instance)),
      "--backup",
      "--stream=mbstream",
      absl::StrCat("--target-dir=", work_dir),
      absl::StrCat("--socket=", MariadbSocketPath(job.instance)),
      absl::StrCat("--user=", BackupSocketUser(job.instance.run_as)),
  };
  ChildProcess::Options options;
  options.pipe_stdout = true;
  // As the account: the key service answers only its uid, and the data dir is its own.
  options.run_as = job.instance.run_as;
  ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child, ChildProcess::Start(argv, options));
  AllowedPid allowed(keys, child->pid());
  RETURN_IF_ERROR(child->Release());

  // A chunk is sealed once the next byte (or EOF) shows whether it is the last: `pending` holds
  // a full chunk until then. Both buffers are wiped (SecretBytes).
  SecretBytes pending(job.chunk_size), current(job.chunk_size);
  size_t pending_size = 0;
  bool have_pending = false;
  Sha256Stream sha;
  BackupSummary out;
  uint64_t index = 0, total = 0;
  auto seal = [&](const SecretBytes& buf, size_t size, bool last) -> absl::Status {
    std::string_view plain(reinterpret_cast<const char*>(buf.data()), size);
    sha.Update(plain);
    ASSIGN_OR_RETURN(std::string sealed, SealBackupChunk(key, job.backup_id, kMariadbStreamFileName,
                                                         index, last, plain));
    RETURN_IF_ERROR(dest.PutDeferred(BackupChunkObject(job.backup_id, 0, index), sealed));
    out.bytes_written += sealed.size();
    out.objects_written++;
    total += size;
    ++index;
    if (progress) progress(total, total);
    return absl::OkStatus();
  };
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, FillFromChild(*child, current));
    if (n == 0 && have_pending) {
      RETURN_IF_ERROR(seal(pending, pending_size, /*last=*/true));
      break;
    }
    if (have_pending) RETURN_IF_ERROR(seal(pending, pending_size, /*last=*/false));
    if (n < current.size()) {  // EOF inside this chunk (an empty stream: one empty chunk)
      RETURN_IF_ERROR(seal(current, n, /*last=*/true));
      break;
    }
    std::swap(pending, current);
    pending_size = n;
    have_pending = true;
  }
  RETURN_IF_ERROR(child->Wait("mariadb-backup --backup"));

  BackupFileEntry entry;
  entry.name = kMariadbStreamFileName;
  entry.size = total;
  entry.sha256_hex = sha.FinishHex();
  entry.chunks = static_cast<uint32_t>(index);
  if (entry.chunks != BackupChunkCount(total, job.chunk_size)) {
    return absl::InternalError("mariadb backup stream chunking is inconsistent");
  }
  m.files.push_back(std::move(entry));
  // Read now, after the stream: a data key added during the backup may encrypt pages in it.
  if (job.dictionary) AddDataKeys(*job.dictionary, m);
  // Every chunk durable, then the manifest last: only now is the backup complete.
  RETURN_IF_ERROR(dest.SyncPuts());
  ASSIGN_OR_RETURN(std::string sealed_manifest, SealBackupManifest(m, key));
  RETURN_IF_ERROR(dest.Put(BackupManifestObject(job.backup_id), sealed_manifest));
  out.bytes = total;
  out.files = 1;
  out.objects_written++;
  out.bytes_written += sealed_manifest.size();
  out.key_id = m.wrapped_key.key_id;
  out.key_version = m.wrapped_key.key_version;
  return out;
}

absl::Status RestoreStream(const MariadbRestoreJob& job, const OpenedBackupManifest& opened,
                           BackupDestination& dest, const BackupProgress& progress) {
  const BackupManifest& m = opened.manifest;
  const BackupFileEntry& f = m.files[0];
  ChildProcess::Options options;
  options.pipe_stdin = true;
  options.cwd = job.target.data_dir;
  options.run_as = job.target.run_as;  // it writes the account's data dir
  ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> mbstream,
                   ChildProcess::Start({job.tools.mbstream, "-x"}, options));
  RETURN_IF_ERROR(mbstream->Release());
  // Every chunk is authenticated before a byte of it reaches mbstream; the size, SHA-256 and the
  // last-chunk flag catch a dropped or reordered chunk.
  SecretBytes plain(m.chunk_size);
  std::string sealed;
  Sha256Stream sha;
  uint64_t done = 0;
  for (uint32_t c = 0; c < f.chunks; ++c) {
    bool last = c + 1 == f.chunks;
    if (absl::Status got = dest.GetInto(BackupChunkObject(m.backup_id, 0, c), &sealed); !got.ok()) {
      return absl::DataLossError(absl::StrCat("backup ", m.backup_id, " is incomplete: chunk ", c,
                                              " cannot be read: ", got.message()));
    }
    ASSIGN_OR_RETURN(size_t n,
                     OpenBackupChunkInto(opened.key, m.backup_id, f.name, c, last, sealed, plain));
    std::string_view view(reinterpret_cast<const char*>(plain.data()), n);
    sha.Update(view);
    done += n;
    if (absl::Status w = mbstream->WriteStdin(view); !w.ok()) {
      return mbstream->Wait("mbstream -x");  // it stopped reading: its own error says why
    }
    if (progress) progress(done, f.size);
  }
  mbstream->CloseStdin();
  if (done != f.size || sha.FinishHex() != f.sha256_hex) {
    return absl::DataLossError(absl::StrCat("backup ", m.backup_id,
                                            " failed verification: its stream does not match its "
                                            "size or SHA-256 in the manifest"));
  }
  return mbstream->Wait("mbstream -x");
}

absl::Status PrepareRestored(const MariadbRestoreJob& job, MariadbKeyService& keys) {
  const std::string cnf_path = job.target.data_dir + "/backup-my.cnf";
  ASSIGN_OR_RETURN(std::string cnf, ReadFileToString(cnf_path, kMaxBackupMyCnf));
  ASSIGN_OR_RETURN(std::string rewritten,
                   RewriteBackupMyCnf(cnf, job.target.plugin_dir, job.target.key_socket));
  RETURN_IF_ERROR(WriteFileAtomically(cnf_path, rewritten, 0600));
  if (job.target.run_as.drop &&
      lchown(cnf_path.c_str(), job.target.run_as.uid, job.target.run_as.gid) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot give ", cnf_path, " to ", job.target.run_as.name, ": ", ErrnoText(errno)));
  }
  // --prepare reads backup-my.cnf (plugin, its socket) from the target dir; the plugin asks
  // `keys`, which allows this child's pid while it runs.
  std::vector<std::string> argv = {job.tools.mariadb_backup, "--prepare",
                                   absl::StrCat("--target-dir=", job.target.data_dir),
                                   absl::StrCat("--plugin-dir=", job.target.plugin_dir)};
  ChildProcess::Options options;
  options.run_as = job.target.run_as;  // the data dir is the account's
  ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child, ChildProcess::Start(argv, options));
  AllowedPid allowed(keys, child->pid());
  RETURN_IF_ERROR(child->Release());
  return child->Wait("mariadb-backup --prepare");
}

}  // namespace

absl::StatusOr<std::string> RewriteBackupMyCnf(std::string_view text, const std::string& plugin_dir,
                                               const std::string& key_socket) {
  for (const std::string* p : {&plugin_dir, &key_socket}) {
    if (p->empty() || p->find_first_of("\n\r\"") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("path '", *p,
                       "' cannot go into backup-my.cnf: it must be non-empty, without quotes "
                       "or line breaks"));
    }
  }
  const std::string dir_line = absl::StrCat("plugin_dir=\"", plugin_dir, "\"");
  const std::string socket_line = absl::StrCat("keyward_key_management_socket=", key_socket);
  std::string out;
  bool dir_done = false, socket_done = false;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(text.data(), text.size()), '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "plugin_dir=")) {
      absl::StrAppend(&out, dir_line, "\n");
      dir_done = true;
    } else if (absl::StartsWith(line, "keyward_key_management_socket=")) {
      absl::StrAppend(&out, socket_line, "\n");
      socket_done = true;
    } else {
      absl::StrAppend(&out, line, "\n");
    }
  }
  if (!dir_done) absl::StrAppend(&out, dir_line, "\n");
  if (!socket_done) absl::StrAppend(&out, socket_line, "\n");
  return out;
}

absl::StatusOr<MariadbBackupStart> StartMariadbBackup(const MariadbBackupJob& job,
                                                      MasterKeyProvider& provider) {
  if (job.chunk_size == 0 || job.backup_id.empty()) {
    return absl::InvalidArgumentError("a mariadb backup needs a backup id and a chunk size");
  }
  MariadbBackupStart start;
  ASSIGN_OR_RETURN(start.manifest, NewBackupManifest(job, provider, &start.key));
  return start;
}

absl::StatusOr<BackupSummary> BackUpMariadb(const MariadbBackupJob& job, MariadbBackupStart start,
                                            MariadbKeyService& keys, BackupDestination& dest,
                                            const BackupProgress& progress) {
  if (job.chunk_size == 0 || job.backup_id.empty() || start.key.size() != kBackupKeySize ||
      start.manifest.backup_id != job.backup_id) {
    return absl::InvalidArgumentError(
        "a mariadb backup needs a backup id, a chunk size and its started manifest");
  }
  absl::StatusOr<BackupSummary> out = StreamBackup(job, std::move(start), keys, dest, progress);
  if (!out.ok()) {
    // The child is killed (ChildProcess's destructor) before this runs.
    (void)DeleteBackupObjects(dest, job.backup_id);
    LogWarn("mariadb.backup_failed",
            absl::StrCat("backup ", job.backup_id, " of cluster ", job.cluster_id,
                         " failed: ", out.status().message()),
            {{"backup_id", job.backup_id}, {"cluster_id", job.cluster_id}});
    return absl::Status(out.status().code(),
                        absl::StrCat("backup ", job.backup_id, " of mariadb cluster ",
                                     job.cluster_id, " failed: ", out.status().message()));
  }
  return out;
}

absl::StatusOr<BackupSummary> BackUpMariadb(const MariadbBackupJob& job, MariadbKeyService& keys,
                                            MasterKeyProvider& provider, BackupDestination& dest,
                                            const BackupProgress& progress) {
  ASSIGN_OR_RETURN(MariadbBackupStart start, StartMariadbBackup(job, provider));
  return BackUpMariadb(job, std::move(start), keys, dest, progress);
}

namespace {

// Opens the manifest and checks it holds a mariadb stream; the target data dir must be unused.
absl::StatusOr<OpenedBackupManifest> OpenMariadbManifest(const MariadbRestoreJob& job,
                                                         MasterKeyProvider& provider,
                                                         BackupDestination& dest) {
  const std::string& id = job.backup_id;
  const std::string& data_dir = job.target.data_dir;
  if (data_dir.empty() || job.target.run_dir.empty()) {
    return absl::InvalidArgumentError("the restored instance's data and run directories are unset");
  }
  std::error_code ec;
  if (fs::exists(data_dir, ec) && !fs::is_empty(data_dir, ec)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot restore backup ", id, " into '",
                                                      data_dir, "': the directory is not empty"));
  }
  ASSIGN_OR_RETURN(std::string manifest_bytes, dest.Get(BackupManifestObject(id)));
  ASSIGN_OR_RETURN(OpenedBackupManifest opened, OpenBackupManifest(manifest_bytes, id, provider));
  const BackupManifest& m = opened.manifest;
  if (m.files.size() != 1 || m.files[0].name != kMariadbStreamFileName ||
      !m.files[0].object.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", id, " is not a mariadb backup (it does not hold one ",
                     kMariadbStreamFileName, "); restore it as a ", "kv cluster"));
  }
  return opened;
}

// Decrypts the stream into target.data_dir and prepares it with keys from `keys`.
absl::Status RestoreAndPrepare(const MariadbRestoreJob& job, const OpenedBackupManifest& opened,
                               MariadbKeyService& keys, BackupDestination& dest,
                               const BackupProgress& progress) {
  RETURN_IF_ERROR(MakeDirs(job.target.data_dir, 0700));
  RETURN_IF_ERROR(GiveDirToAccount(job.target.data_dir, job.target.run_as, false));
  RETURN_IF_ERROR(RestoreStream(job, opened, dest, progress));
  return PrepareRestored(job, keys);
}

// The restored admin account's new password, through `mariadbd --bootstrap` on the prepared
// data dir (no network; the grant tables are plain tables in bootstrap mode). A missing account
// changes nothing: the new cluster's first login says so.
absl::Status SetAdminPassword(const MariadbInstanceSpec& spec, const std::string& user,
                              const SecretBytes& password, MariadbKeyService& keys) {
  RETURN_IF_ERROR(ValidateMariadbAdminUser(user));
  RETURN_IF_ERROR(WriteOptionFile(spec));
  std::vector<std::string> argv = MariadbdArgv(spec);
  for (const char* a :
       {"--bootstrap", "--skip-networking", "--log-warnings=0", "--enforce-storage-engine="}) {
    argv.emplace_back(a);
  }
  std::string sql = absl::StrCat(
      "use mysql;\n"
      "UPDATE global_priv SET Priv=JSON_SET(Priv, '$.authentication_string', '",
      MariadbNativePasswordHash(password.view()), "', '$.password_last_changed', ",
      static_cast<int64_t>(time(nullptr)), ") WHERE User='", user, "' AND Host='%';\n");
  ChildProcess::Options options;
  options.pipe_stdin = true;
  options.run_as = spec.run_as;
  ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child, ChildProcess::Start(argv, options));
  AllowedPid allowed(keys, child->pid());
  RETURN_IF_ERROR(child->Release());
  absl::Status sent = child->WriteStdin(sql);
  WipeString(sql);  // it held the password's hash
  child->CloseStdin();
  absl::Status waited = child->Wait(absl::StrCat(spec.mariadbd_path, " --bootstrap"));
  RETURN_IF_ERROR(waited);
  return sent;
}

}  // namespace

absl::StatusOr<BackupManifest> RestoreMariadbBackup(const MariadbRestoreJob& job,
                                                    MariadbKeyService& keys,
                                                    MasterKeyProvider& provider,
                                                    BackupDestination& dest,
                                                    const BackupProgress& progress) {
  ASSIGN_OR_RETURN(OpenedBackupManifest opened, OpenMariadbManifest(job, provider, dest));
  absl::Status s = RestoreAndPrepare(job, opened, keys, dest, progress);
  if (s.ok()) s = WriteOptionFile(job.target);
  if (!s.ok()) {
    std::error_code ec;
    fs::remove_all(job.target.data_dir, ec);
    return absl::Status(s.code(), absl::StrCat("restoring mariadb backup ", job.backup_id,
                                               " failed: ", s.message(), "; nothing was restored"));
  }
  return std::move(opened.manifest);
}

absl::StatusOr<BackupManifest> RestoreMariadbBackupAsNewCluster(const MariadbNewClusterRestore& job,
                                                                MasterKeyProvider& provider,
                                                                BackupDestination& dest,
                                                                const BackupProgress& progress) {
  const MariadbRestoreJob& r = job.restore;
  if (job.cluster_id.empty() || job.dictionary_path.empty() || job.admin_password.empty()) {
    return absl::InvalidArgumentError(
        "a restore as a new cluster needs its cluster id, dictionary path and admin password");
  }
  if (access(job.dictionary_path.c_str(), F_OK) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot restore backup ", r.backup_id, ": ",
                                                      job.dictionary_path, " already exists"));
  }
  ASSIGN_OR_RETURN(OpenedBackupManifest opened, OpenMariadbManifest(r, provider, dest));
  const BackupManifest& m = opened.manifest;
  if (m.data_keys.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "backup ", r.backup_id,
        " does not carry its data keys (an older format): it cannot be restored as a new cluster"));
  }
  auto fail = [&](const absl::Status& s) {
    std::error_code ec;
    fs::remove_all(r.target.data_dir, ec);
    fs::remove(job.dictionary_path, ec);
    return absl::Status(s.code(), absl::StrCat("restoring mariadb backup ", r.backup_id,
                                               " failed: ", s.message(), "; nothing was restored"));
  };
  if (absl::Status made = MakeDirs(fs::path(job.dictionary_path).parent_path().string(), 0700);
      !made.ok()) {
    return fail(made);
  }
  std::vector<std::shared_ptr<const DataKey>> keys;
  for (const BackupDataKey& d : m.data_keys) {
    auto k = std::make_shared<DataKey>();
    k->id = d.id;
    k->created_unix = d.created_unix;
    k->key = d.key->Clone();
    keys.push_back(std::move(k));
  }
  absl::StatusOr<std::unique_ptr<KeyDictionary>> dict = KeyDictionary::CreateWithDataKeys(
      job.dictionary_path, job.cluster_id, provider, std::move(keys), m.current_data_key);
  if (!dict.ok()) return fail(dict.status());
  // Only the prepare and bootstrap children (allowed by pid while they run) get keys.
  MariadbKeyService service(**dict, [](pid_t) { return false; });
  absl::Status s = absl::OkStatus();
  if (r.target.run_as.drop) {
    // The children run as mariadbd's account: they reach the staging dir through its group.
    service.SetPeerAccount(r.target.run_as.uid, r.target.run_as.gid);
    const std::string node_dir = fs::path(r.target.data_dir).parent_path().string();
    s = MakeDirs(node_dir, 0700);
    const std::string top =
        job.data_root.empty() ? DirName(DirName(DirName(node_dir))) : job.data_root;
    if (s.ok()) s = LetAccountReach(top, node_dir, r.target.run_as);
  }
  if (s.ok()) s = service.Start(r.target.key_socket);
  if (s.ok()) s = RestoreAndPrepare(r, opened, service, dest, progress);
  if (s.ok()) s = SetAdminPassword(r.target, job.admin_user, job.admin_password, service);
  if (s.ok()) s = WriteOptionFile(r.target);
  service.Stop();
  if (!s.ok()) return fail(s);
  return std::move(opened.manifest);
}

}  // namespace keyward
