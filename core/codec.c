/*
 * Wire codec: shared frames, the incremental decoder and the payload checks
 * cJSON does not make. See codec.h for the contract.
 */
#include "codec.h"

#ifdef __GLIBC__
#include <malloc.h> /* mallopt */
#endif
#include <math.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- frames --------------------------------------------------------- */

/* One heap block per frame: the public view, the count, then the bytes.
 * The block is freed by whoever drops the last reference. */
typedef struct frame_block {
    sa_frame pub; /* first, so a sa_frame * is the block's address */
    atomic_size_t refs;
    unsigned char bytes[];
} frame_block;

static frame_block *block_of(sa_frame *f)
{
    return (frame_block *)((char *)f - offsetof(frame_block, pub));
}

sa_frame *sa_frame_from_text(const char *json, size_t len)
{
    /* A zero-length frame is a protocol error on the wire, so never make one. */
    if (!json || len == 0 || len > UINT32_MAX)
        return NULL;
    frame_block *b = malloc(sizeof *b + SA_FRAME_HEADER + len);
    if (!b)
        return NULL;
    b->bytes[0] = (unsigned char)(len >> 24);
    b->bytes[1] = (unsigned char)(len >> 16);
    b->bytes[2] = (unsigned char)(len >> 8);
    b->bytes[3] = (unsigned char)len;
    memcpy(b->bytes + SA_FRAME_HEADER, json, len);
    b->pub.bytes = b->bytes;
    b->pub.len = SA_FRAME_HEADER + len;
    atomic_init(&b->refs, 1);
    return &b->pub;
}

/* 1 when some number in the tree is a whole number cJSON would print
 * inexactly (16 or more digits). */
static int has_long_integer(const cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item) && fabs(item->valuedouble) >= 1e15 &&
            fabs(item->valuedouble) <= SA_MAX_SAFE_INTEGER &&
            floor(item->valuedouble) == item->valuedouble)
            return 1;
        if (item->child && has_long_integer(item->child))
            return 1;
    }
    return 0;
}

/* A copy of the tree whose long whole numbers print exactly. */
static cJSON *copy_with_exact_numbers(const cJSON *item)
{
    if (cJSON_IsNumber(item))
        return sa_json_copy_exact(item);
    if (!cJSON_IsArray(item) && !cJSON_IsObject(item))
        return cJSON_Duplicate(item, 1);
    cJSON *copy = cJSON_IsArray(item) ? cJSON_CreateArray() : cJSON_CreateObject();
    for (const cJSON *child = item->child; copy && child; child = child->next) {
        cJSON *c = copy_with_exact_numbers(child);
        if (!c || (cJSON_IsArray(item) ? !cJSON_AddItemToArray(copy, c)
                                       : !cJSON_AddItemToObject(copy, child->string, c))) {
            cJSON_Delete(c);
            cJSON_Delete(copy);
            return NULL;
        }
    }
    return copy;
}

sa_frame *sa_frame_from_json(const cJSON *msg)
{
    if (!msg)
        return NULL;
    cJSON *exact = NULL; /* ours, when made; freed below */
    if (msg->child && has_long_integer(msg->child)) {
        exact = copy_with_exact_numbers(msg);
        if (!exact)
            return NULL;
    }
    char *text = cJSON_PrintUnformatted(exact ? exact : msg); /* ours; freed below */
    cJSON_Delete(exact);
    if (!text)
        return NULL;
    sa_frame *f = sa_frame_from_text(text, strlen(text));
    free(text);
    return f;
}

void sa_frame_ref(sa_frame *f)
{
    if (f)
        atomic_fetch_add_explicit(&block_of(f)->refs, 1, memory_order_relaxed);
}

void sa_frame_unref(sa_frame *f)
{
    if (!f)
        return;
    frame_block *b = block_of(f);
    /* acq_rel: the last owner must see every write made by the others. */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

/* ---- decoder -------------------------------------------------------- */

/* Blocks up to the largest frame buffers (a max_frame payload, a printed
 * text while cJSON doubles its buffer) come from the heap, and its free top
 * is trimmed only past twice that. */
#define HEAP_MMAP_THRESHOLD (4 << 20)
#define HEAP_TRIM_THRESHOLD (8 << 20)

void sa_codec_keep_heap(void)
{
#ifdef __GLIBC__
    /* Advisory: when refused, the defaults only cost speed. */
    (void)mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD);
    (void)mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD);
#endif
}

enum { DECODER_FIRST_ALLOC = 4096 };

void sa_decoder_init(sa_decoder *d, uint32_t max_frame)
{
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame;
}

int sa_decoder_idle(const sa_decoder *d) { return d->header_have == 0 && !d->payload; }

void sa_decoder_free(sa_decoder *d)
{
    free(d->payload);
    d->payload = NULL;
    d->payload_need = d->payload_have = d->payload_cap = 0;
    d->header_have = 0;
}

static uint32_t read_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

enum sa_decode_status sa_decoder_feed(sa_decoder *d, const unsigned char *data, size_t len,
                                      sa_frame_fn on_frame, void *arg, int *stopped)
{
    if (stopped)
        *stopped = 0;
    size_t pos = 0;
    while (pos < len) {
        if (!d->payload) {
            size_t take = SA_FRAME_HEADER - d->header_have;
            if (take > len - pos)
                take = len - pos;
            memcpy(d->header + d->header_have, data + pos, take);
            d->header_have += take;
            pos += take;
            if (d->header_have < SA_FRAME_HEADER)
                break;
            uint32_t n = read_be32(d->header);
            if (n == 0)
                return SA_DECODE_EMPTY;
            if (n > d->max_frame)
                return SA_DECODE_TOO_LARGE;
            if (len - pos >= n) {
                /* The whole payload is in the caller's buffer: no copy. */
                d->header_have = 0;
                int stop = on_frame(arg, data + pos, n);
                pos += n;
                if (stop) {
                    if (stopped)
                        *stopped = 1;
                    return SA_DECODE_OK;
                }
                continue;
            }
            /* Sized to what has arrived, not to what the header announces:
             * a peer that announces max_frame and sends nothing more costs
             * only the bytes it sent. */
            size_t cap = len - pos > DECODER_FIRST_ALLOC ? len - pos : DECODER_FIRST_ALLOC;
            if (cap > n)
                cap = n;
            d->payload = malloc(cap); /* the decoder's; freed after delivery */
            if (!d->payload)
                return SA_DECODE_NOMEM;
            d->payload_cap = cap;
            d->payload_need = n;
            d->payload_have = 0;
        }
        size_t take = d->payload_need - d->payload_have;
        if (take > len - pos)
            take = len - pos;
        if (d->payload_have + take > d->payload_cap) {
            /* Doubling keeps the copies linear in the frame's size. */
            size_t cap = d->payload_cap * 2;
            if (cap < d->payload_have + take)
                cap = d->payload_have + take;
            if (cap > d->payload_need)
                cap = d->payload_need;
            unsigned char *grown = realloc(d->payload, cap);
            if (!grown)
                return SA_DECODE_NOMEM;
            d->payload = grown;
            d->payload_cap = cap;
        }
        memcpy(d->payload + d->payload_have, data + pos, take);
        d->payload_have += take;
        pos += take;
        if (d->payload_have < d->payload_need)
            break;
        /* Reset before the call so the decoder is consistent whatever
         * on_frame does. */
        unsigned char *frame = d->payload;
        size_t frame_len = d->payload_need;
        d->payload = NULL;
        d->payload_need = d->payload_have = d->payload_cap = 0;
        d->header_have = 0;
        int stop = on_frame(arg, frame, frame_len);
        free(frame);
        if (stop) {
            if (stopped)
                *stopped = 1;
            return SA_DECODE_OK;
        }
    }
    return SA_DECODE_OK;
}

/* ---- UTF-8 ---------------------------------------------------------- */

int sa_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII runs (a file chunk's base64 is all ASCII) go a block of
         * four words at a time, then a word at a time. */
        if (len - i >= 32) {
            uint64_t words[4];
            memcpy(words, s + i, sizeof words);
            if (!((words[0] | words[1] | words[2] | words[3]) & UINT64_C(0x8080808080808080))) {
                i += 32;
                continue;
            }
        }
        if (len - i >= 8) {
            uint64_t word;
            memcpy(&word, s + i, sizeof word);
            if (!(word & UINT64_C(0x8080808080808080))) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* Continuation count and the allowed range of the second byte,
         * which is where overlongs, surrogates and > U+10FFFF show. */
        size_t more;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c == 0xE0) {
            more = 2;
            lo = 0xA0;
        } else if (c == 0xED) {
            more = 2;
            hi = 0x9F;
        } else if (c >= 0xE1 && c <= 0xEF) {
            more = 2;
        } else if (c == 0xF0) {
            more = 3;
            lo = 0x90;
        } else if (c == 0xF4) {
            more = 3;
            hi = 0x8F;
        } else if (c >= 0xF1 && c <= 0xF3) {
            more = 3;
        } else {
            return 0;
        }
        if (len - i - 1 < more)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += more + 1;
    }
    return 1;
}

/* ---- envelope ------------------------------------------------------- */

/* Stands in for a \u0000 escape in the copy given to cJSON. A raw 0xFF byte
 * is never valid UTF-8, so after the UTF-8 check it cannot come from the
 * client, and cJSON copies it into the string unchanged. */
#define NUL_SENTINEL 0xFF

enum scan_result { SCAN_OK, SCAN_NOT_JSON, SCAN_TOO_DEEP };

static int is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

#define BYTE_ONES UINT64_C(0x0101010101010101)
#define BYTE_HIGHS UINT64_C(0x8080808080808080)

/* 1 when one of the eight bytes of `w` is a quote, a backslash or a control
 * byte: the bytes that end a run of plain string text. The borrow tricks
 * may flag the wrong byte of a word, but flag a word exactly when it holds
 * one, and only that is used. */
static int word_ends_run(uint64_t w)
{
    uint64_t quote = w ^ (BYTE_ONES * '"'), backslash = w ^ (BYTE_ONES * '\\');
    uint64_t zero_quote = (quote - BYTE_ONES) & ~quote;
    uint64_t zero_backslash = (backslash - BYTE_ONES) & ~backslash;
    uint64_t control = (w - BYTE_ONES * 0x20) & ~w;
    return ((zero_quote | zero_backslash | control) & BYTE_HIGHS) != 0;
}

/* How many bytes at the start of `s` are plain string text. Strings are
 * nearly all of a large payload (a file chunk's base64), so they are
 * skipped eight bytes at a time. */
static size_t plain_string_run(const unsigned char *s, size_t len)
{
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof w);
        if (word_ends_run(w))
            break;
    }
    while (i < len && s[i] != '"' && s[i] != '\\' && s[i] >= 0x20)
        i++;
    return i;
}

/* cJSON reads a string byte by byte twice (to find its end, then to copy
 * it); for a file chunk's ~87 KB of base64 that was a third of the
 * server's time. Strings at least this long without escapes are cut out
 * of the text before cJSON parses it and copied into the tree after. */
#define LONG_STRING_MIN 1024

typedef struct long_string {
    size_t ordinal; /* among all strings, keys included, in text order */
    size_t start;   /* offset of its first byte, after the quote */
    size_t len;
} long_string;

typedef struct long_strings {
    long_string *list; /* owned */
    size_t count, cap;
    size_t ordinal; /* strings seen so far */
    bool failed;    /* out of memory: the list is incomplete */
} long_strings;

/* Counts the string that ended at `end` (its closing quote), which began
 * at `start`, and notes it when it is long and plain. */
static void long_strings_note(long_strings *found, size_t start, size_t end, bool escaped)
{
    size_t ordinal = found->ordinal++;
    if (escaped || end - start < LONG_STRING_MIN || found->failed)
        return;
    if (found->count == found->cap) {
        size_t cap = found->cap ? 2 * found->cap : 4;
        long_string *grown = realloc(found->list, cap * sizeof *grown);
        if (!grown) {
            found->failed = true;
            return;
        }
        found->list = grown;
        found->cap = cap;
    }
    found->list[found->count++] =
        (long_string){.ordinal = ordinal, .start = start, .len = end - start};
}

/* One pass over the raw text, tracking string state: enforces the depth
 * limit before cJSON recurses, rejects raw control bytes (cJSON lets them
 * through and would cut strings at a raw NUL), and counts \u0000 escapes.
 * With `out` (len bytes), also writes the text with each \u0000 escape
 * replaced by NUL_SENTINEL, and its length into *out_len. With `found`,
 * notes the long plain strings of `in` (see sa_json_parse). */
static enum scan_result scan_json(const unsigned char *in, size_t len, unsigned char *out,
                                  size_t *out_len, size_t *nul_escapes, long_strings *found)
{
    static const char nul_escape[] = "\\u0000";
    const size_t nul_escape_len = sizeof nul_escape - 1;
    int depth = 0, in_string = 0;
    size_t o = 0;
    size_t string_start = 0;
    bool escaped = false;
    *nul_escapes = 0;
    for (size_t i = 0; i < len; i++) {
        if (in_string) {
            size_t run = plain_string_run(in + i, len - i);
            if (out)
                memcpy(out + o, in + i, run);
            o += run;
            i += run;
            if (i == len)
                break;
        }
        unsigned char c = in[i];
        if (in_string) {
            if (c == '\\') {
                escaped = true;
                if (len - i >= nul_escape_len && memcmp(in + i, nul_escape, nul_escape_len) == 0) {
                    (*nul_escapes)++;
                    if (out)
                        out[o++] = NUL_SENTINEL;
                    i += nul_escape_len - 1;
                    continue;
                }
                /* Copy the backslash and the escaped byte together, so an
                 * escaped backslash or quote is never taken for syntax. */
                if (i + 1 >= len)
                    return SCAN_NOT_JSON;
                if (out) {
                    out[o++] = c;
                    out[o++] = in[i + 1];
                }
                i++;
                continue;
            }
            if (c == '"') {
                in_string = 0;
                if (found)
                    long_strings_note(found, string_start, i, escaped);
            } else if (c < 0x20) {
                return SCAN_NOT_JSON;
            }
        } else if (c == '"') {
            in_string = 1;
            string_start = i + 1;
            escaped = false;
        } else if (c == '{' || c == '[') {
            if (++depth > SA_JSON_MAX_DEPTH)
                return SCAN_TOO_DEEP;
        } else if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
        } else if (c < 0x20 && !is_json_space(c)) {
            return SCAN_NOT_JSON;
        }
        if (out)
            out[o++] = c;
    }
    if (out_len)
        *out_len = o;
    return SCAN_OK;
}

/* ---- parsing with long strings copied in blocks ---------------------- */

typedef struct string_filler {
    const unsigned char *text;
    const long_strings *cut;
    size_t next;    /* the next entry of cut->list to put back */
    size_t ordinal; /* strings of the tree visited so far */
    bool failed;    /* out of memory */
} string_filler;

/* Visits one string of the tree (a key or a value) in text order: when it
 * is the next one cut out, gives it its text back. */
static void fill_string(string_filler *f, char **slot)
{
    size_t ordinal = f->ordinal++;
    if (f->next == f->cut->count || f->cut->list[f->next].ordinal != ordinal)
        return;
    const long_string *ls = &f->cut->list[f->next++];
    char *copy = cJSON_malloc(ls->len + 1);
    if (!copy) {
        f->failed = true;
        return;
    }
    memcpy(copy, f->text + ls->start, ls->len);
    copy[ls->len] = '\0';
    cJSON_free(*slot);
    *slot = copy;
}

/* Depth-first, a member's key before its value: the text's order. The
 * depth is bounded by the nesting the parser accepted. */
static void fill_item(string_filler *f, cJSON *item, bool is_member)
{
    if (is_member)
        fill_string(f, &item->string);
    if (cJSON_IsString(item))
        fill_string(f, &item->valuestring);
    for (cJSON *child = item->child; child && !f->failed; child = child->next)
        fill_item(f, child, cJSON_IsObject(item));
}

/* Parses exactly one JSON value from `text`, surrounding whitespace
 * allowed. With no long plain string this is cJSON as is. */
static cJSON *parse_whole(const unsigned char *text, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)text, len, &end, 0);
    size_t parsed = root ? (size_t)((const unsigned char *)end - text) : 0;
    while (root && parsed < len && is_json_space(text[parsed]))
        parsed++;
    if (root && parsed != len) {
        cJSON_Delete(root);
        root = NULL;
    }
    return root;
}

/* parse_whole, with the strings of `cut` (found in `text` by scan_json)
 * copied in blocks. */
static cJSON *parse_cut(const unsigned char *text, size_t len, const long_strings *cut)
{
    if (cut->failed || cut->count == 0)
        return parse_whole(text, len);
    size_t removed = 0;
    for (size_t k = 0; k < cut->count; k++)
        removed += cut->list[k].len;
    unsigned char *shell = malloc(len - removed); /* the text without them; ours */
    if (!shell)
        return NULL;
    size_t from = 0, to = 0;
    for (size_t k = 0; k < cut->count; k++) {
        memcpy(shell + to, text + from, cut->list[k].start - from);
        to += cut->list[k].start - from;
        from = cut->list[k].start + cut->list[k].len;
    }
    memcpy(shell + to, text + from, len - from);
    cJSON *root = parse_whole(shell, len - removed);
    free(shell);
    if (root) {
        string_filler filler = {.text = text, .cut = cut};
        fill_item(&filler, root, false);
        if (filler.failed || filler.next != cut->count) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    return root;
}

cJSON *sa_json_parse(const unsigned char *text, size_t len)
{
    if (len < LONG_STRING_MIN)
        return parse_whole(text, len);
    long_strings found = {0};
    size_t nul_escapes;
    /* A text the scan refuses goes to cJSON whole, which decides. */
    cJSON *root = scan_json(text, len, NULL, NULL, &nul_escapes, &found) == SCAN_OK
                      ? parse_cut(text, len, &found)
                      : parse_whole(text, len);
    free(found.list);
    return root;
}

static int holds_sentinel(const char *s)
{
    return s && strchr(s, NUL_SENTINEL) != NULL;
}

/* Finds the first string (key or value, in document order) that held a
 * \u0000 escape. Returns 0 when there is none, 1 when it is the value of a
 * member called "name", 2 otherwise. Recursion is bounded by the depth
 * check made before parsing. */
static int find_nul(const cJSON *item)
{
    for (const cJSON *c = item->child; c; c = c->next) {
        if (holds_sentinel(c->string))
            return 2;
        if (cJSON_IsString(c) && holds_sentinel(c->valuestring))
            return c->string && strcmp(c->string, "name") == 0 ? 1 : 2;
        int found = find_nul(c);
        if (found)
            return found;
    }
    return 0;
}

static int envelope_fail(sa_envelope *env, const char *error, const char *message)
{
    env->error = error;
    env->message = message;
    return -1;
}

int sa_envelope_parse(const unsigned char *payload, size_t len, sa_envelope *env)
{
    memset(env, 0, sizeof *env);
    if (!sa_utf8_valid(payload, len))
        return envelope_fail(env, "bad_json", "payload is not valid UTF-8");

    size_t nul_escapes;
    long_strings found = {0}; /* the list is ours: freed below */
    switch (scan_json(payload, len, NULL, NULL, &nul_escapes, &found)) {
    case SCAN_OK:
        break;
    case SCAN_NOT_JSON:
        free(found.list);
        return envelope_fail(env, "bad_json", "payload is not valid JSON");
    case SCAN_TOO_DEEP:
        free(found.list);
        return envelope_fail(env, "bad_json", "nesting too deep");
    }

    const unsigned char *text = payload;
    size_t text_len = len;
    unsigned char *copy = NULL; /* ours when NUL escapes were replaced */
    if (nul_escapes) {
        copy = malloc(len);
        if (!copy) {
            free(found.list);
            return envelope_fail(env, "internal", "out of memory");
        }
        /* Same input as the first pass, so the same (OK) result. */
        (void)scan_json(payload, len, copy, &text_len, &nul_escapes, NULL);
        text = copy;
    }
    /* A copy has other offsets: it is scanned again (it is refused below
     * anyway, for its NUL). */
    env->root = copy ? sa_json_parse(text, text_len) : parse_cut(text, text_len, &found);
    free(found.list);
    free(copy);
    if (!env->root)
        return envelope_fail(env, "bad_json", "payload is not valid JSON");
    if (!cJSON_IsObject(env->root))
        return envelope_fail(env, "bad_request", "a request must be a JSON object");

    /* Read type and id first so that any error below can echo them. A
     * string that held a NUL is not echoed: it is not what the client sent. */
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(env->root, "type");
    if (cJSON_IsString(type) && type->valuestring && !holds_sentinel(type->valuestring))
        env->type = type->valuestring;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(env->root, "id");
    int id_ok = !id || (sa_id_valid(id) && !(cJSON_IsString(id) && holds_sentinel(id->valuestring)));
    if (id && id_ok)
        env->id = id;

    if (nul_escapes) {
        if (find_nul(env->root) == 1)
            return envelope_fail(env, "bad_name", "name contains NUL");
        return envelope_fail(env, "bad_request", "strings must not contain NUL");
    }
    if (!env->type)
        return envelope_fail(env, "bad_request", "missing string type");
    if (!id_ok)
        return envelope_fail(env, "bad_request",
                             "id must be an integer or a string of at most 64 bytes");
    return 0;
}

void sa_envelope_free(sa_envelope *env)
{
    cJSON_Delete(env->root);
    memset(env, 0, sizeof *env);
}

/* ---- values --------------------------------------------------------- */

/* A whole number in [-2^53, 2^53]. NaN and infinities fail the range test,
 * and inside the range the cast to int64_t is exact. */
static int is_safe_integer(double v)
{
    return v >= -SA_MAX_SAFE_INTEGER && v <= SA_MAX_SAFE_INTEGER && v == (double)(int64_t)v;
}

int sa_id_valid(const cJSON *id)
{
    if (cJSON_IsNumber(id))
        return is_safe_integer(id->valuedouble);
    if (cJSON_IsString(id) && id->valuestring)
        return strlen(id->valuestring) <= SA_ID_MAX_LEN;
    return 0;
}

int sa_json_get_size(const cJSON *obj, const char *key, uint64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(item) || !is_safe_integer(item->valuedouble) || item->valuedouble < 0)
        return -1;
    *out = (uint64_t)item->valuedouble;
    return 0;
}

/* Members the reply itself sets; a copy from `fields` would duplicate them. */
static int is_envelope_key(const char *key, int has_code)
{
    return strcmp(key, "type") == 0 || strcmp(key, "re") == 0 || strcmp(key, "id") == 0 ||
           (has_code && (strcmp(key, "code") == 0 || strcmp(key, "message") == 0));
}

/* cJSON prints integers of 16 or more digits as "%1.15g"
 * (9007199254740992 becomes 9.00719925474099e+15), so a whole number is
 * written out exactly as raw JSON text instead. */
cJSON *sa_json_copy_exact(const cJSON *id)
{
    if (cJSON_IsNumber(id) && is_safe_integer(id->valuedouble)) {
        char digits[32];
        snprintf(digits, sizeof digits, "%.0f", id->valuedouble);
        return cJSON_CreateRaw(digits);
    }
    return cJSON_Duplicate(id, 1);
}

sa_frame *sa_reply_frame(const char *type, const char *re, const cJSON *id, const char *code,
                         const char *message, const cJSON *fields)
{
    /* `reply` is ours; the members taken from `fields` are added as
     * references, so deleting `reply` leaves the caller's values alone. */
    cJSON *reply = cJSON_CreateObject();
    if (!reply || !cJSON_AddStringToObject(reply, "type", type))
        goto fail;
    if (re && !cJSON_AddStringToObject(reply, "re", re))
        goto fail;
    if (id) {
        cJSON *id_copy = sa_json_copy_exact(id);
        if (!id_copy)
            goto fail;
        if (!cJSON_AddItemToObject(reply, "id", id_copy)) {
            cJSON_Delete(id_copy);
            goto fail;
        }
    }
    if (cJSON_IsObject(fields)) {
        for (cJSON *member = fields->child; member; member = member->next) {
            if (!member->string || is_envelope_key(member->string, code != NULL))
                continue;
            if (!cJSON_AddItemReferenceToObject(reply, member->string, member))
                goto fail;
        }
    }
    if (code && (!cJSON_AddStringToObject(reply, "code", code) ||
                 !cJSON_AddStringToObject(reply, "message", message ? message : "")))
        goto fail;
    sa_frame *frame = sa_frame_from_json(reply);
    cJSON_Delete(reply);
    return frame;
fail:
    cJSON_Delete(reply);
    return NULL;
}

int sa_name_valid(const char *name, size_t max)
{
    if (!name)
        return 0;
    size_t len = strnlen(name, max < SIZE_MAX ? max + 1 : max);
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}
