/*
 * auth: token authentication at hello (PROTOCOL.md §3).
 *
 * Every hello must carry a "token" whose SHA-256 is listed in the tokens
 * file ([auth] tokens_file, format in auth_tokens.h) for the hello's name
 * or for "*". Anything else gets error auth_failed, then bye auth_failed,
 * then the connection closes (the host does that for SA_HELLO_FATAL).
 *
 * Failed hellos are counted per client address (auth_lockout.h): after
 * max_failures within fail_window seconds the address is locked out for
 * `lockout` seconds, during which its hellos are refused at once, tokens
 * unchecked. Callbacks must never block, so "slowed down" means refused
 * rather than delayed.
 *
 * SIGHUP re-reads the tokens file; a bad new file leaves the old table in
 * force. Neither the token nor its hash is ever logged.
 *
 * State and threading:
 *   - `auth` below is written by init() and stop() only, except `tokens`.
 *   - `tokens` is owned by this plugin. Hello checks (any number at once,
 *     on the sync engine's threads) read it under the read lock; on_reload
 *     (the host's signal thread) swaps in a new table under the write lock
 *     and frees the old one after releasing it.
 *   - `failures` is owned by this plugin and locks itself.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <syncasync/plugin.h>

#include "auth_lockout.h"
#include "auth_tokens.h"

#define AUTH_FAILED "auth_failed"
/* Addresses whose failures are remembered at once (auth_lockout.h). */
#define REMEMBERED_ADDRESSES 4096

static struct {
    const sa_host *host;
    sa_plugin_ctx *ctx;
    const char *tokens_path; /* the host's string, valid until stop() returns */
    int64_t lockout_s;
    pthread_rwlock_t tokens_lock;
    auth_token_table *tokens;
    auth_lockout *failures;
} auth = {.tokens_lock = PTHREAD_RWLOCK_INITIALIZER};

/* Milliseconds on CLOCK_MONOTONIC, which wall-clock changes do not
 * disturb. A clock that cannot be read gives 0: lockouts then last until
 * it can, which errs on the safe side. */
static int64_t monotonic_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The address part of the host's peer text "ADDR:PORT" or "[V6]:PORT",
 * malloc'd (the caller frees it), or NULL when out of memory. */
static char *peer_address(const char *peer)
{
    if (peer[0] == '[') {
        const char *close = strchr(peer, ']');
        return close ? strndup(peer + 1, (size_t)(close - peer - 1)) : strdup(peer);
    }
    const char *colon = strrchr(peer, ':');
    return colon ? strndup(peer, (size_t)(colon - peer)) : strdup(peer);
}

/* Reads the tokens file into a new table, or logs why not (at `level`,
 * with `consequence` appended) and returns NULL. */
static auth_token_table *load_tokens(enum sa_log_level level, const char *consequence)
{
    char *error = NULL;
    auth_token_table *table = auth_tokens_load(auth.tokens_path, &error);
    if (!table)
        auth.host->log(auth.ctx, level, "%s%s", error ? error : "out of memory", consequence);
    free(error);
    return table;
}

static void log_loaded(const auth_token_table *table, const char *verb)
{
    size_t n = auth_tokens_count(table);
    if (n == 0)
        auth.host->log(auth.ctx, SA_LOG_WARN, "%s %s: no tokens, every hello will be refused",
                       verb, auth.tokens_path);
    else
        auth.host->log(auth.ctx, SA_LOG_INFO, "%s %s: %zu token%s", verb, auth.tokens_path, n,
                       n == 1 ? "" : "s");
}

/* 1 when the hello's token is right for `name`. */
static int token_accepted(const cJSON *token, const char *name)
{
    int rc = pthread_rwlock_rdlock(&auth.tokens_lock);
    if (rc != 0) {
        auth.host->log(auth.ctx, SA_LOG_ERROR, "cannot read the tokens table: %s",
                       strerror(rc));
        return 0;
    }
    /* The host rejects \u0000 escapes, so strlen is the token's length. */
    int ok = auth_tokens_match(auth.tokens, name, token->valuestring, strlen(token->valuestring));
    pthread_rwlock_unlock(&auth.tokens_lock);
    return ok;
}

/* Counts a failure from `address` and logs a lockout that it starts. */
static void count_failure(const char *address, int64_t now_ms)
{
    int rc = auth_lockout_record_failure(auth.failures, address, now_ms);
    if (rc > 0)
        auth.host->log(auth.ctx, SA_LOG_WARN,
                       "%s: too many failed hellos, refusing it for %lld s", address,
                       (long long)auth.lockout_s);
    else if (rc < 0)
        auth.host->log(auth.ctx, SA_LOG_WARN, "%s: out of memory counting a failed hello",
                       address);
}

static enum sa_hello_verdict auth_hello_check(sa_plugin_ctx *ctx, const sa_request *hello,
                                              const char **code, const char **message)
{
    (void)ctx;
    const char *peer = auth.host->session_peer(hello->session);
    /* The host answers bad_name before asking plugins: name is valid. */
    const cJSON *name_item = cJSON_GetObjectItemCaseSensitive(hello->body, "name");
    const char *name = cJSON_IsString(name_item) ? name_item->valuestring : "?";
    *code = AUTH_FAILED;
    char *address = peer_address(peer);
    if (!address) {
        auth.host->log(auth.ctx, SA_LOG_ERROR, "%s: out of memory checking a hello", peer);
        *message = "the server is out of memory";
        return SA_HELLO_FATAL;
    }
    int64_t now_ms = monotonic_ms();
    if (auth_lockout_is_locked(auth.failures, address, now_ms)) {
        /* Debug only: a locked-out client retrying must not flood the log;
         * the lockout itself was logged when it began. */
        auth.host->log(auth.ctx, SA_LOG_DEBUG, "%s: hello as %s refused, address locked out",
                       peer, name);
        free(address);
        *message = "too many failed attempts; try again later";
        return SA_HELLO_FATAL;
    }
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(hello->body, "token");
    if (cJSON_IsString(token) && token_accepted(token, name)) {
        auth.host->log(auth.ctx, SA_LOG_DEBUG, "%s: %s authenticated", peer, name);
        free(address);
        return SA_HELLO_ACCEPT;
    }
    if (cJSON_IsString(token)) {
        auth.host->log(auth.ctx, SA_LOG_INFO, "%s: hello as %s refused, wrong token", peer,
                       name);
        *message = "invalid token";
    } else {
        auth.host->log(auth.ctx, SA_LOG_INFO, "%s: hello as %s refused, no token", peer, name);
        *message = "token required";
    }
    count_failure(address, now_ms);
    free(address);
    return SA_HELLO_FATAL;
}

static void auth_reload(sa_plugin_ctx *ctx)
{
    (void)ctx;
    auth_token_table *fresh = load_tokens(SA_LOG_ERROR, "; keeping the tokens loaded before");
    if (!fresh)
        return;
    int rc = pthread_rwlock_wrlock(&auth.tokens_lock);
    if (rc != 0) {
        auth.host->log(auth.ctx, SA_LOG_ERROR,
                       "cannot replace the tokens table: %s; keeping the tokens loaded before",
                       strerror(rc));
        auth_tokens_free(fresh);
        return;
    }
    auth_token_table *old = auth.tokens;
    auth.tokens = fresh;
    pthread_rwlock_unlock(&auth.tokens_lock);
    auth_tokens_free(old);
    log_loaded(fresh, "reloaded");
}

static void auth_stop(sa_plugin_ctx *ctx)
{
    (void)ctx;
    auth_tokens_free(auth.tokens);
    auth.tokens = NULL;
    auth_lockout_free(auth.failures);
    auth.failures = NULL;
}

static int auth_init(sa_plugin_ctx *ctx, const sa_host *host)
{
    auth.host = host;
    auth.ctx = ctx;
    auth.tokens_path = host->config_string(ctx, "tokens_file");
    auth.lockout_s = host->config_int(ctx, "lockout");
    int64_t max_failures = host->config_int(ctx, "max_failures");
    int64_t window_s = host->config_int(ctx, "fail_window");
    auth.tokens = load_tokens(SA_LOG_ERROR, "");
    if (!auth.tokens)
        return -1;
    auth.failures = auth_lockout_new((unsigned)max_failures, window_s * 1000,
                                     auth.lockout_s * 1000, REMEMBERED_ADDRESSES);
    if (!auth.failures) {
        host->log(ctx, SA_LOG_ERROR, "out of memory");
        auth_stop(ctx);
        return -1;
    }
    log_loaded(auth.tokens, "loaded");
    host->log(ctx, SA_LOG_INFO,
              "an address with %lld failed hellos within %lld s is refused for %lld s",
              (long long)max_failures, (long long)window_s, (long long)auth.lockout_s);
    return 0;
}

static const sa_config_key auth_config[] = {
    {"tokens_file", SA_CFG_PATH, "tokens", 0, 0,
     "lines \"NAME SHA256_HEX_OF_TOKEN\"; NAME \"*\" = anyone; \"#\" comments"},
    {"max_failures", SA_CFG_INT, "5", 1, 1000,
     "failed hellos from one address within fail_window before it is locked out"},
    {"fail_window", SA_CFG_INT, "60", 1, 86400, "seconds over which failures are counted"},
    {"lockout", SA_CFG_INT, "30", 1, 86400,
     "seconds a locked-out address has every hello refused"},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const sa_plugin auth_plugin = {
    .abi = SA_ABI_VERSION,
    .kind = SA_PLUGIN_HANDLER,
    .name = "auth",
    .version = "1.0",
    .description = "token authentication at hello, with lockout of guessing addresses",
    .config_keys = auth_config,
    .init = auth_init,
    .stop = auth_stop,
    .on_hello_check = auth_hello_check,
    .on_reload = auth_reload,
};

SA_PLUGIN_DEFINE(auth_plugin)
