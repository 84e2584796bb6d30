/* The sa_host table handed to handler plugins. */
#ifndef SA_HOST_SERVICES_H
#define SA_HOST_SERVICES_H

#include <syncasync/plugin.h>

const sa_host *sa_host_services(void);

/* The plugin whose init() is running: register_request and
 * service_provide are accepted only for it. Set by the server. */
void sa_host_services_set_initializing(sa_plugin_ctx *ctx);

/* The first error a plugin caused during init (e.g. a request type clash);
 * "" when none. */
const char *sa_host_services_init_error(void);

#endif
