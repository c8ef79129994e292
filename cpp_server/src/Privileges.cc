#include "Privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace finnsplit {
namespace {

Status lookUp(const std::string& user, uid_t* uid, gid_t* gid) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc = ::getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc == 0 && found) {
    *uid = found->pw_uid;
    *gid = found->pw_gid;
    return Status::ok();
  }
  char* end = nullptr;
  unsigned long number = std::strtoul(user.c_str(), &end, 10);
  if (!user.empty() && *end == '\0') {
    *uid = static_cast<uid_t>(number);
    *gid = static_cast<gid_t>(number);
    return Status::ok();
  }
  return Status::error("--user: no user '" + user + "' on this system (create it: useradd --system finnsplit)");
}

std::string errnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

Status Privileges::dropTo(const std::string& user) {
  uid_t uid = 0;
  gid_t gid = 0;
  Status st = lookUp(user, &uid, &gid);
  if (!st) return st;
  if (::geteuid() != 0) {
    if (::geteuid() == uid && ::getuid() == uid) return Status::ok();
    return Status::error("--user " + user + ": not running as root, cannot switch users");
  }
  if (uid == 0) return Status::error("--user " + user + " is root: nothing would be dropped");
  // Changing credentials clears the parent-death signal (the agent's PR_SET_PDEATHSIG): set it again.
  int deathSignal = 0;
  ::prctl(PR_GET_PDEATHSIG, &deathSignal, 0, 0, 0);
  const pid_t parent = ::getppid();
  if (::setgroups(0, nullptr) != 0) return Status::error(errnoText("setgroups"));
  if (::setresgid(gid, gid, gid) != 0) return Status::error(errnoText("setresgid"));
  if (::setresuid(uid, uid, uid) != 0) return Status::error(errnoText("setresuid"));
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Status::error(errnoText("prctl(PR_SET_NO_NEW_PRIVS)"));
  if (::setuid(0) == 0 || ::geteuid() == 0) return Status::error("--user: root could be regained; refusing to run");
  if (deathSignal != 0) {
    ::prctl(PR_SET_PDEATHSIG, deathSignal, 0, 0, 0);
    if (::getppid() != parent) return Status::error("the parent process exited while privileges were dropped");
  }
  return Status::ok();
}

}  // namespace finnsplit
