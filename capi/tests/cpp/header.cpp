// The header from C++: compiles with -std=c++11 -Wall -Wextra -Werror (extern "C" guards,
// no C-only constructs), links, and drives a host with a C++ lambda-free callback.
#include "threadhost.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace {

threadhost_status body(void *user, const threadhost_context *ctx) {
    std::string *name = static_cast<std::string *>(user);
    char buf[64];
    if (threadhost_context_name(ctx, buf, sizeof buf, nullptr) != THREADHOST_OK) {
        return THREADHOST_INVALID_STATE;
    }
    *name = buf;
    return threadhost_context_request_host_stop(ctx);
}

bool host_from_cpp() {
    std::string name;
    threadhost_builder *b = threadhost_builder_new();
    if (threadhost_builder_add_background(b, "cpp", body, &name, nullptr) != THREADHOST_OK) {
        return false;
    }
    threadhost_host *host = nullptr;
    if (threadhost_builder_build(b, &host) != THREADHOST_OK) return false;
    bool ok = threadhost_host_start(host, 5000) == THREADHOST_OK &&
              threadhost_host_join(host, 5000) == THREADHOST_OK && name == "cpp";
    threadhost_host_free(host);
    return ok;
}

bool version_macros() {
    std::string expected = std::to_string(THREADHOST_VERSION_MAJOR) + "." +
                           std::to_string(THREADHOST_VERSION_MINOR) + "." +
                           std::to_string(THREADHOST_VERSION_PATCH);
    return expected == threadhost_version();
}

}  // namespace

int main() {
    int failures = 0;
    bool ok = host_from_cpp();
    std::printf("host_from_cpp: %s\n", ok ? "ok" : "FAILED");
    failures += ok ? 0 : 1;
    ok = version_macros();
    std::printf("version_macros: %s\n", ok ? "ok" : "FAILED");
    failures += ok ? 0 : 1;
    return failures == 0 ? 0 : 1;
}
