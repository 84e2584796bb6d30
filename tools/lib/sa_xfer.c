#include "sa_xfer.h"

#include <stdlib.h>
#include <string.h>

#include "sa_display.h"

const char *sa_xfer_string(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

int sa_xfer_is_type(const cJSON *frame, const char *type)
{
    const char *value = sa_xfer_string(frame, "type");
    return value && strcmp(value, type) == 0;
}

int sa_xfer_is_reply_to(const cJSON *frame, int64_t id)
{
    if (id < 0 || (!sa_xfer_is_type(frame, "ok") && !sa_xfer_is_type(frame, "error")))
        return 0;
    const cJSON *reply_id = cJSON_GetObjectItemCaseSensitive(frame, "id");
    return cJSON_IsNumber(reply_id) && reply_id->valuedouble == (double)id;
}

char *sa_xfer_error_text(const cJSON *error)
{
    strbuf text;
    strbuf_init(&text);
    strbuf_add_untrusted(&text, sa_xfer_string(error, "code"));
    strbuf_add(&text, ": ");
    strbuf_add_untrusted(&text, sa_xfer_string(error, "message"));
    if (text.failed) {
        strbuf_free(&text);
        return NULL;
    }
    return text.data; /* the caller's now */
}

size_t sa_xfer_chunk_bytes(uint32_t max_frame, size_t chunk_size, const char *file_id)
{
    /* {"type":"file_chunk","file_id":"…","offset":N,"data":"…"}: the fixed
     * text, an offset of up to 16 digits, and the id escaped at worst as
     * \uXXXX per byte. */
    size_t overhead = 64 + 16 + 6 * strlen(file_id);
    if (max_frame <= overhead)
        return 0;
    size_t fits = (max_frame - overhead) / 4 * 3;
    if (chunk_size > SA_XFER_MAX_CHUNK)
        chunk_size = SA_XFER_MAX_CHUNK;
    return chunk_size <= fits ? chunk_size : fits;
}
