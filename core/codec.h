/*
 * Wire codec shared by the host and the client tools (static library
 * sa_codec): the incremental frame decoder, frame encoding, and the checks
 * on a frame's JSON payload that cJSON does not make (UTF-8, NUL escapes,
 * nesting depth, whole-number sizes).
 */
#ifndef SA_CODEC_H
#define SA_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include <syncasync/engine.h> /* struct sa_frame */

#define SA_FRAME_HEADER 4u
#define SA_DEFAULT_MAX_FRAME 1048576u
#define SA_JSON_MAX_DEPTH 64
#define SA_MAX_SAFE_INTEGER 9007199254740992.0 /* 2^53 */
#define SA_ID_MAX_LEN 64

/* ---- frames --------------------------------------------------------- */

/* Encodes a JSON object as one frame (refcount 1). NULL when out of memory
 * or when the encoding is larger than UINT32_MAX. */
sa_frame *sa_frame_from_json(const cJSON *msg);
/* Wraps already-serialized JSON text of `len` bytes (copied). */
sa_frame *sa_frame_from_text(const char *json, size_t len);
void sa_frame_ref(sa_frame *f);
void sa_frame_unref(sa_frame *f); /* frees at zero; NULL is fine */

/* ---- decoder -------------------------------------------------------- */

enum sa_decode_status {
    SA_DECODE_OK = 0,      /* all input consumed (or the callback stopped it) */
    SA_DECODE_EMPTY,       /* a frame announced length 0: bad_frame */
    SA_DECODE_TOO_LARGE,   /* a frame announced length > max_frame */
    SA_DECODE_NOMEM        /* could not allocate the frame buffer */
};

/* Incremental decoder: owns at most one partial frame. Input may be split
 * anywhere and may hold many frames. The length is checked against
 * max_frame before anything is allocated. */
typedef struct sa_decoder {
    uint32_t max_frame;
    unsigned char header[SA_FRAME_HEADER];
    size_t header_have;
    unsigned char *payload; /* partial frame, NULL when between frames */
    size_t payload_need, payload_have;
    size_t payload_cap; /* bytes allocated: grows with what arrives, up to need */
} sa_decoder;

/* Called once per complete frame; `payload` is valid only during the call.
 * Return 0 to continue, nonzero to stop decoding (the rest is dropped). */
typedef int (*sa_frame_fn)(void *arg, const unsigned char *payload, size_t len);

/* Frames of tens of KiB to a few MiB are allocated and freed for every
 * message (payload, parsed strings, printed text). glibc's defaults give
 * such blocks back to the kernel at each free and fault them in again at
 * the next frame, which cost a file transfer a third of its CPU time; this
 * keeps up to a few MiB per malloc arena instead. Called once at start-up,
 * before any thread; a no-op without glibc. */
void sa_codec_keep_heap(void);

void sa_decoder_init(sa_decoder *d, uint32_t max_frame);
void sa_decoder_free(sa_decoder *d); /* frees the partial frame */
/* 1 when no partial frame is held (between frames). */
int sa_decoder_idle(const sa_decoder *d);
/* Feeds bytes. After a non-OK status the decoder must not be fed again.
 * *stopped (may be NULL) is set to 1 when on_frame asked to stop. */
enum sa_decode_status sa_decoder_feed(sa_decoder *d, const unsigned char *data, size_t len,
                                      sa_frame_fn on_frame, void *arg, int *stopped);

/* ---- payload checks ------------------------------------------------- */

/* 1 when [s, s+len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
int sa_utf8_valid(const unsigned char *s, size_t len);

/* Result of parsing a request payload. */
typedef struct sa_envelope {
    cJSON *root;        /* owned; NULL when the payload is not JSON */
    const char *type;   /* points into root; NULL when missing */
    const cJSON *id;    /* points into root; NULL when absent or invalid */
    const char *error;  /* NULL, or the protocol error code to reply */
    const char *message;/* human text for the error */
} sa_envelope;

/* Parses and validates a request payload (PROTOCOL.md §1-2):
 *   invalid UTF-8, not JSON, or nested deeper than SA_JSON_MAX_DEPTH: bad_json
 *   top level not an object, no string type, bad id: bad_request
 *   a \u0000 escape: bad_name when inside a member called "name",
 *                    otherwise bad_request
 * On error, root/type/id are still set when they could be read, so that
 * the reply can echo them. Returns 0 when valid, -1 on error. */
int sa_envelope_parse(const unsigned char *payload, size_t len, sa_envelope *env);
void sa_envelope_free(sa_envelope *env);

/* 1 when `id` is a valid request id: a whole number with |id| <= 2^53, or
 * a string of at most SA_ID_MAX_LEN bytes. */
int sa_id_valid(const cJSON *id);

/* Parses `text` as exactly one JSON value (whitespace around it allowed).
 * Like cJSON, except that long strings without escapes are copied in one
 * block rather than byte by byte. NULL when it is not such a value, or out
 * of memory. The caller owns the tree. */
cJSON *sa_json_parse(const unsigned char *text, size_t len);

/* A deep copy of `value` that prints exactly: cJSON would print whole
 * numbers of 16 or more digits in exponent form (used to echo id and ts). */
cJSON *sa_json_copy_exact(const cJSON *value);

/* Reads obj[key] as a size: whole number in [0, 2^53]. 0 ok, -1 otherwise. */
int sa_json_get_size(const cJSON *obj, const char *key, uint64_t *out);

/* Builds a reply frame: {"type":type,"re":re,"id":id, ...fields, ...extra}
 * (re/id omitted when NULL) plus "code"/"message" when code != NULL. */
sa_frame *sa_reply_frame(const char *type, const char *re, const cJSON *id, const char *code,
                         const char *message, const cJSON *fields);

/* 1 when `name` is 1..max bytes of [A-Za-z0-9_.-]. */
int sa_name_valid(const char *name, size_t max);

#endif
