/*
 * echo: the example handler plugin, a model to copy (docs/plugins.md).
 *
 *   {"type":"echo","id":1,"text":"hi"}
 *   -> {"type":"ok","re":"echo","id":1,"text":"<prefix>hi","count":1}
 *
 * `prefix` comes from the [echo] section of syncasync.ini; `count` is how
 * many echo requests this session has made, kept as per-session data.
 *
 * Build out of tree against an installed SyncAsync:
 *   cc -shared -fPIC -fvisibility=hidden \
 *      $(pkg-config --cflags syncasync-plugin) echo.c -o echo.so
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <syncasync/plugin.h>

/* Written once by init(), read-only afterwards: safe to read from any
 * thread without a lock. */
static const sa_host *host;
static const char *prefix; /* owned by the host, valid until stop() returns */

/* Per-session data: malloc'd on the session's first echo, freed in
 * echo_disconnect. Only that session's lane touches it, so no lock. */
typedef struct echo_session {
    uint64_t count;
} echo_session;

static echo_session *session_state(sa_plugin_ctx *ctx, sa_session *s)
{
    echo_session *state = host->session_get_data(ctx, s);
    if (!state) {
        state = calloc(1, sizeof *state);
        if (state)
            host->session_set_data(ctx, s, state);
    }
    return state;
}

static void handle_echo(sa_plugin_ctx *ctx, const sa_request *req)
{
    /* req and req->body are borrowed: valid until this function returns. */
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(req->body, "text");
    if (!cJSON_IsString(text)) {
        host->reply_error(req, "bad_request", "text must be a string", NULL);
        return;
    }
    echo_session *state = session_state(ctx, req->session);
    size_t prefix_len = strlen(prefix), text_len = strlen(text->valuestring);
    char *echoed = malloc(prefix_len + text_len + 1);
    cJSON *result = cJSON_CreateObject();
    if (!state || !echoed || !result) {
        host->reply_error(req, "internal", "out of memory", NULL);
    } else {
        memcpy(echoed, prefix, prefix_len);
        memcpy(echoed + prefix_len, text->valuestring, text_len + 1);
        state->count++;
        if (cJSON_AddStringToObject(result, "text", echoed) &&
            cJSON_AddNumberToObject(result, "count", (double)state->count))
            host->reply_ok(req, result); /* copies what it needs */
        else
            host->reply_error(req, "internal", "out of memory", NULL);
    }
    /* Whatever we pass to the host stays ours to free. */
    cJSON_Delete(result);
    free(echoed);
}

static void echo_disconnect(sa_plugin_ctx *ctx, sa_session *s)
{
    free(host->session_get_data(ctx, s));
    host->session_set_data(ctx, s, NULL);
}

static int echo_init(sa_plugin_ctx *ctx, const sa_host *h)
{
    host = h;
    prefix = host->config_string(ctx, "prefix"); /* already validated */
    return host->register_request(ctx, "echo", handle_echo);
}

static const sa_config_key echo_config[] = {
    {"prefix", SA_CFG_STRING, "", 0, 0, "text put before every echoed text"},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const sa_plugin echo_plugin = {
    .abi = SA_ABI_VERSION, /* the host refuses a plugin built for another ABI */
    .kind = SA_PLUGIN_HANDLER,
    .name = "echo", /* the file is echo.so; the INI section is [echo] */
    .version = "1.0",
    .description = "example: echoes text back with a prefix and a per-session count",
    .config_keys = echo_config,
    .init = echo_init,
    .on_disconnect = echo_disconnect,
};

SA_PLUGIN_DEFINE(echo_plugin)
