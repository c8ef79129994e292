// Privileges: after the devices are mapped and the sockets bound, the server gives up root
// (docs/security.md, "Least privilege on the board"): supplementary groups, group and user are
// switched to an unprivileged account, no_new_privs is set, and getting root back is checked to fail.
// Thread safety: call from the main thread before any other thread starts.
#pragma once

#include <string>

#include "Status.h"

namespace finnsplit {

class Privileges {
 public:
  // Switches to `user` (a name or a numeric uid). Already running as that user is fine; any other
  // user without root is an error.
  static Status dropTo(const std::string& user);
};

}  // namespace finnsplit
