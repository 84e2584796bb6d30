#include "file_name.h"

#include <string.h>

int file_name_valid(const char *name)
{
    /* strnlen: a 10 000-byte name is refused without measuring all of it. */
    size_t len = strnlen(name, FILE_NAME_MAX + 1);
    if (len == 0 || len > FILE_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7F || c == '/' || c == '\\')
            return 0;
    }
    return 1;
}
