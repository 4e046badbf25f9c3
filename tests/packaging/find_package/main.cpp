#include <mama/guard.hpp>
#include <iostream>
int main(int argc, char** argv) {
  const char* state = argc > 1 ? argv[1] : "mama.xml";
  try {
    mama::XmlStateStore store(state);
    mama::JobGuard guard(store, "test-machine", {.job = "nightly regression"});
    std::cout << "claimed " << guard.machine() << '\n';
    // run the job here; the machine is released when `guard` goes out of scope
  } catch (const mama::error& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
