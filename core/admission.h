/* Admission of new connections: max_clients in all, max_per_address from
 * one address. Safe from any thread. */
#ifndef SA_ADMISSION_H
#define SA_ADMISSION_H

#include <stdint.h>

enum sa_admission { SA_ADMIT_OK = 0, SA_ADMIT_SERVER_FULL, SA_ADMIT_ADDRESS_FULL };

/* The address part of a peer text ("ADDR:PORT" or "[V6]:PORT"), newly
 * allocated (the caller frees it), or NULL when out of memory. */
char *sa_peer_address(const char *peer);

/* Counts a connection from `address` unless a limit is reached
 * (max_per_address 0 = no limit). Only SA_ADMIT_OK counts it. */
enum sa_admission sa_admission_acquire(const char *address, int64_t max_clients,
                                       int64_t max_per_address);
void sa_admission_release(const char *address);

#endif
