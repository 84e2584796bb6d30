/*
 * The file system side of a download: the NAME.part file inside the
 * download folder, and its final rename. Everything goes through a
 * descriptor of the folder (openat, renameat2, linkat), with names that
 * sa_filename_sanitize made, so nothing lands outside the folder; no
 * symbolic link is ever followed, and an existing file is never replaced
 * unless asked to.
 */
#ifndef SA_PART_FILE_H
#define SA_PART_FILE_H

#include <stddef.h>

/* The most "NAME (n)" variants tried before giving up. */
#define SA_PART_MAX_VARIANTS 10000

/* Opens `part_name` in the folder `dirfd` for reading and writing,
 * creating it (mode 0666 less the umask) when missing. Refuses a symbolic
 * link, anything but a regular file, a file with other hard links (it
 * could be someone's file planted there), and one another process holds
 * locked (it is being written): -1 with the reason in err. On success
 * returns the descriptor, which holds an exclusive lock (flock) until
 * closed, and sets *created when the file did not exist before. */
int sa_part_open(int dirfd, const char *part_name, int *created, char *err, size_t errlen);

/* Gives the finished `part_name` its final name in `dirfd`: `name`, or
 * when that exists (whatever it is, a dangling symbolic link included) and
 * !force, the first free "name (1)", "name (2)"... Checking and renaming
 * are one atomic step (renameat2 RENAME_NOREPLACE, or link + unlink on file
 * systems without it), so a file that appears meanwhile is never
 * replaced. With force an existing `name` is replaced (a symbolic link
 * itself, never its target). Returns the name used (malloc'd; the caller
 * frees it), or NULL with the reason in err. */
char *sa_part_commit(int dirfd, const char *part_name, const char *name, int force, char *err,
                     size_t errlen);

#endif
