#include "sa_part_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sa_filename.h"

/* The one descriptor opened here is closed on every failure path. */
static int refuse(int fd, char *err, size_t errlen, const char *part_name, const char *why)
{
    if (fd >= 0)
        (void)close(fd); /* nothing was written through it */
    snprintf(err, errlen, "%s: %s", part_name, why);
    return -1;
}

int sa_part_open(int dirfd, const char *part_name, int *created, char *err, size_t errlen)
{
    /* O_EXCL first tells whether this run created the file. O_NOFOLLOW
     * refuses a symbolic link at the name (ELOOP); O_NONBLOCK keeps a FIFO
     * planted there from blocking the open (it is refused below). */
    const int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    *created = 1;
    int fd = openat(dirfd, part_name, flags | O_CREAT | O_EXCL, 0666);
    if (fd < 0 && errno == EEXIST) {
        *created = 0;
        fd = openat(dirfd, part_name, flags);
    }
    if (fd < 0) {
        if (errno == ELOOP)
            return refuse(-1, err, errlen, part_name,
                          "is a symbolic link; refusing to follow it");
        return refuse(-1, err, errlen, part_name, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        return refuse(fd, err, errlen, part_name, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return refuse(fd, err, errlen, part_name, "is not a regular file");
    if (st.st_nlink != 1)
        return refuse(fd, err, errlen, part_name,
                      "has other hard links; refusing to write through it");
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        return refuse(fd, err, errlen, part_name,
                      errno == EWOULDBLOCK ? "is being written by another download"
                                           : strerror(errno));
    return fd;
}

/* Renames without replacing: 0, or -1 with errno (EEXIST when `to` is
 * taken). */
static int rename_noreplace(int dirfd, const char *from, const char *to)
{
    if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* No RENAME_NOREPLACE on this file system: linkat fails with EEXIST
     * rather than replace, which makes the same guarantee. */
    if (linkat(dirfd, from, dirfd, to, 0) != 0)
        return -1;
    /* The file is in place under its final name either way. Should the
     * unlink fail, the stale .part link left over is refused (two links)
     * and reported by the next download of the same name. */
    (void)unlinkat(dirfd, from, 0);
    return 0;
}

char *sa_part_commit(int dirfd, const char *part_name, const char *name, int force, char *err,
                     size_t errlen)
{
    if (force) {
        char *final = strdup(name);
        if (!final) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        if (renameat(dirfd, part_name, dirfd, name) != 0) {
            snprintf(err, errlen, "cannot rename %s to %s: %s", part_name, name, strerror(errno));
            free(final);
            return NULL;
        }
        return final;
    }
    for (unsigned n = 0; n <= SA_PART_MAX_VARIANTS; n++) {
        char *candidate = sa_filename_variant(name, n); /* ours until returned */
        if (!candidate) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        if (rename_noreplace(dirfd, part_name, candidate) == 0)
            return candidate;
        int e = errno;
        free(candidate);
        if (e != EEXIST) {
            snprintf(err, errlen, "cannot rename %s: %s", part_name, strerror(e));
            return NULL;
        }
    }
    snprintf(err, errlen, "no free name for %s (tried %u variants)", name, SA_PART_MAX_VARIANTS);
    return NULL;
}
