// mama/detail/xml/inotify.hpp — the mama.xml store's pool of inotify descriptors for waiters.
//
// Closing an inotify descriptor makes the kernel wait for a grace period (5-15 ms measured
// here), which a waiter would pay right after getting the machine. So a finished watcher hands
// its descriptor back (its watches removed) for the next watch, and the pool closes the
// descriptors when it goes. No pugixml here.
#pragma once

#include <sys/inotify.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

#include "mama/detail/posix.hpp"
#include "mama/error.hpp"

namespace mama::detail {

class inotify_pool {
 public:
  inotify_pool() = default;
  inotify_pool(const inotify_pool&) = delete;
  inotify_pool& operator=(const inotify_pool&) = delete;
  ~inotify_pool() {
    for (int fd : idle_) ::close(fd);
  }

  /// An inotify descriptor without watches (non-blocking, close-on-exec): a returned one,
  /// drained, or a new one. Throws mama::error naming `what` (the watched file).
  int take(const std::string& what) {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        const int fd = idle_.back();
        idle_.pop_back();
        drain_fd(fd);  // IN_IGNORED of the removed watches, stale wake-ups
        return fd;
      }
    }
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) throw_errno("cannot watch " + what + " (inotify_init1)");
    return fd;
  }

  /// Takes `fd` back after removing its watches `wds` (which, unlike close(), does not wait).
  void retire(int fd, const std::vector<int>& wds) noexcept {
    for (int wd : wds) ::inotify_rm_watch(fd, wd);
    std::lock_guard lock(mutex_);
    try {
      idle_.push_back(fd);
    } catch (...) {
      ::close(fd);
    }
  }

  /// Descriptors waiting for reuse.
  std::size_t idle() const {
    std::lock_guard lock(mutex_);
    return idle_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<int> idle_;
};

}  // namespace mama::detail
