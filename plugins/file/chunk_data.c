#include "chunk_data.h"

#include "base64.h"

size_t chunk_data_text_size(size_t len)
{
    return b64_encoded_len(len) + 3; /* two quotes and the NUL */
}

cJSON *chunk_data_json(const unsigned char *in, size_t len, char *text)
{
    size_t encoded = b64_encoded_len(len);
    text[0] = '"';
    b64_encode(in, len, text + 1);
    text[encoded + 1] = '"';
    text[encoded + 2] = '\0';
    cJSON *item = cJSON_CreateStringReference(text);
    /* cJSON has no raw reference maker; a reference's text is never freed
     * by cJSON_Delete, whatever its type, so only the type changes. */
    if (item)
        item->type = cJSON_Raw | cJSON_IsReference;
    return item;
}
