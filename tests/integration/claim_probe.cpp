// claim_probe — checks a machine's record in a state file, for the CTest wrapper tests.
//   claim_probe STATE MACHINE --held-by-parent JOB   the parent (`mama run`) holds it for this process
//   claim_probe STATE MACHINE --idle                 nobody holds it
// Exit status 0 when the check holds, 1 otherwise (with the record on stderr).
#include <unistd.h>

#include <iostream>
#include <mama/xml_state_store.hpp>
#include <string>

int main(int argc, char** argv) {
  const std::string mode = argc > 3 ? argv[3] : "";
  if (argc < 4 || (mode == "--held-by-parent" && argc != 5) || (mode == "--idle" && argc != 4)) {
    std::cerr << "usage: claim_probe STATE MACHINE (--held-by-parent JOB | --idle)\n";
    return 2;
  }
  try {
    mama::XmlStateStore store(argv[1]);
    const auto record = store.begin().find(argv[2]);
    if (!record) {
      std::cerr << "claim_probe: no machine '" << argv[2] << "' in " << argv[1] << '\n';
      return 1;
    }
    bool ok = false;
    if (mode == "--idle") {
      ok = record->idle() && record->pid.empty() && record->token.empty();
    } else {
      // `mama run` (the parent) claimed and handed the claim over to its command: this process.
      ok = record->job == argv[4] && record->pid == std::to_string(::getpid()) &&
           !record->token.empty();
    }
    std::cout << "claim_probe: " << argv[2] << ": job '" << record->job << "', PID '" << record->pid
              << "' (parent " << ::getppid() << "): " << (ok ? "as expected" : "NOT as expected")
              << '\n';
    return ok ? 0 : 1;
  } catch (const mama::error& e) {
    std::cerr << "claim_probe: " << e.what() << '\n';
    return 1;
  }
}
