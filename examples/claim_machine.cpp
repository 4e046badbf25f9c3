// claim_machine — the smallest program that claims a lab machine for a job.
//   claim_machine STATE_FILE MACHINE
#include <iostream>
#include <mama/guard.hpp>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: claim_machine STATE_FILE MACHINE\n";
    return 2;
  }
  try {
    mama::XmlStateStore store(argv[1]);
    mama::JobGuard guard(store, argv[2], {.job = "claim_machine example"});
    std::cout << "claimed " << guard.machine() << " with token " << guard.token() << '\n';
    // ... run the job here; the machine is released when `guard` goes out of scope.
  } catch (const mama::error& e) {
    std::cerr << "claim_machine: " << e.what() << '\n';
    return 1;
  }
}
