// mama/fwd.hpp — forward declarations and the everyday alias, for headers that only name types.
#pragma once

namespace mama {

class SystemClock;
class ManualClock;
class ProcProbe;
class FakeProbe;
class XmlStateStore;
class MemoryStateStore;

/// The guard (guard.hpp). The defaults are the real policies on mama.xml.
template <class Clock = SystemClock, class ProcessProbe = ProcProbe,
          class StateStore = XmlStateStore>
class StaleJobGuard;

/// The everyday guard: system clock, /proc probe, mama.xml store.
using JobGuard = StaleJobGuard<>;

}  // namespace mama
