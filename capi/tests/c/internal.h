/* Declarations for the C tests only: exported by the library, not part of its public header
 * (include/threadhost.h). tests/c_api.rs counts these with the header's when it checks that
 * every export is declared. */
#ifndef THREADHOST_INTERNAL_H
#define THREADHOST_INTERNAL_H

#include "threadhost.h"

/*
 * TEST ONLY: panics inside the boundary and returns THREADHOST_PANIC with a last error
 * message, proving that a Rust panic never aborts the C caller. No other effect; the default
 * Rust panic hook prints the panic to stderr.
 */
threadhost_status threadhost_test_panic(void);

#endif
