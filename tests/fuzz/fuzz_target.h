/* The entry points libFuzzer calls, declared once for every target (each
 * target defines TestOneInput, and Initialize when it needs set-up).
 * A target aborts on any broken invariant, so that libFuzzer keeps the
 * input that broke it. */
#ifndef SA_FUZZ_TARGET_H
#define SA_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
