// Three planted bugs (a use after free, a leak, a signed overflow), one per argument: scripts/sanitize.sh builds this
// with the flags it builds rlaif with and checks that each is reported and fails the program — so a green sanitizer run
// means the sanitizers were really watching.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "";
  volatile int n = argc + 7;  // not known at compile time
  if (std::strcmp(what, "heap") == 0) {
    int* a = new int[8];
    a[n - 8] = 1;
    delete[] a;
    return a[n - 8];  // heap-use-after-free, seen by ASan
  }
  if (std::strcmp(what, "leak") == 0) {
    void* volatile p = std::malloc(4096);  // never freed, and nothing points at it at exit
    p = nullptr;
    return p != nullptr;
  }
  if (std::strcmp(what, "ub") == 0) {
    volatile int big = INT_MAX;
    std::printf("%d\n", big + (n - 8));  // signed overflow
    return 0;
  }
  return 0;
}
