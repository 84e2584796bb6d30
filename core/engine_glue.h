/* The sa_engine_core table the host hands its engine: where the engine's
 * connection events enter the protocol (framing, dispatch, heartbeat). */
#ifndef SA_ENGINE_GLUE_H
#define SA_ENGINE_GLUE_H

#include <syncasync/engine.h>

/* Fills `core` for the running server (sa_the_server). */
void sa_engine_glue_init(sa_engine_core *core, const sa_engine_config *config);

#endif
