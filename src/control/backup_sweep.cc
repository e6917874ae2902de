// ControlPlane's sweep of leaked shared SST objects (incremental backups,
// backup/backup_format.h). A shared object is deleted when the last backup holding it is deleted,
// but a crash between a backup's uploads and its cleanup, or a delete that failed (destination
// unreachable), leaves objects that no backup holds: they are never restorable and only take
// space. The sweep deletes them.
//
// Why it never deletes an object a backup uses: a backup records its hold on a new object
// (backup_file_objects) before it puts the object's first chunk, so an object the sweep lists
// was held when its chunks were written; and once no row holds an object, no backup can hold it
// again (a reuse claim needs another holder, in the same statement; new objects get new random
// names). Holds are checked again right before each delete. The grace period on top (an object
// must be seen unheld by sweeps at least that far apart) covers what that reasoning does not
// know about, e.g. an operator's restore of backups.db from an older copy.
//
// Only shared/<cluster id>/ of clusters in this server's metadata (deleted ones included) is
// swept: a destination shared with another server keeps that server's objects.

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backup/backup_format.h"
#include "control/control_plane.h"
#include "util/log.h"

namespace keyward {

ControlPlane::BackupSweepRun ControlPlane::SweepLeakedBackupObjects() {
  BackupSweepRun run;
  if (!backups_) return run;
  auto clusters = metadata_.ListClusters("", {0, 1 << 30});
  if (!clusters.ok()) {
    LogWarn("backup.sweep_failed", absl::StrCat("backup object sweep: cannot list the clusters: ",
                                                clusters.status().message()));
    return run;
  }
  std::vector<BackupDestination*> dests = backup_destinations_;
  if (backup_secondary_ &&
      std::find(dests.begin(), dests.end(), backup_secondary_) == dests.end()) {
    dests.push_back(backup_secondary_);
  }
  const int64_t now = Now();
  std::set<std::string> unheld_now;
  for (BackupDestination* dest : dests) {
    const std::string where = dest->Describe();
    for (const Cluster& c : *clusters) {
      if (!IsSafeBackupFileName(c.id)) continue;
      const std::string prefix = absl::StrCat("shared/", c.id, "/");
      auto names = dest->List(prefix);
      if (!names.ok()) {
        LogWarn("backup.sweep_failed",
                absl::StrCat("backup object sweep: cannot list ", prefix, " in ", where, ": ",
                             names.status().message()),
                {{"cluster_id", c.id}});
        continue;
      }
      std::set<std::string> objects;  // "shared/<cluster>/<id>" of chunks "<object>/<index>"
      for (const std::string& name : *names) {
        size_t slash = name.find('/', prefix.size());
        if (slash == std::string::npos) continue;
        std::string object = name.substr(0, slash);
        if (IsBackupFileObject(c.id, object)) objects.insert(std::move(object));
      }
      for (const std::string& object : objects) {
        auto held = backups_->IsFileObjectHeld(object);
        if (!held.ok() || *held) continue;
        ++run.unheld;
        std::string key = absl::StrCat(where, "\n", object);
        unheld_now.insert(key);
        int64_t since;
        {
          std::lock_guard<std::mutex> lock(sweep_mu_);
          since = unheld_since_.emplace(key, now).first->second;
        }
        if (now - since < kBackupSweepGraceSeconds) continue;
        held = backups_->IsFileObjectHeld(object);
        if (!held.ok() || *held) continue;
        absl::Status st = dest->DeleteAll(object + "/");
        if (!st.ok()) {
          LogWarn("backup.sweep_failed",
                  absl::StrCat("backup object sweep: cannot delete leaked object ", object,
                               " from ", where, " (tried again at the next sweep): ", st.message()),
                  {{"cluster_id", c.id}});
          continue;
        }
        ++run.deleted;
        unheld_now.erase(key);
        LogInfo("backup.sweep_deleted",
                absl::StrCat("deleted shared backup object ", object, " from ", where,
                             ": no backup has held it for at least ",
                             kBackupSweepGraceSeconds / 3600, " hours"),
                {{"cluster_id", c.id}});
      }
    }
  }
  // An object not seen unheld this time (deleted, or not listed) starts its grace again.
  std::lock_guard<std::mutex> lock(sweep_mu_);
  for (auto it = unheld_since_.begin(); it != unheld_since_.end();) {
    it = unheld_now.count(it->first) ? std::next(it) : unheld_since_.erase(it);
  }
  return run;
}

}  // namespace keyward
