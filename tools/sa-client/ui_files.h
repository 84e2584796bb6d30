/*
 * sa-client's file commands, inside the ui (ui.h): /send PATH [USER],
 * /files, /get FILE_ID [DIR], and the transfers they start, which run as
 * sa_upload / sa_download state machines pumped by the driver (ui_pump).
 * Also the two ui.c helpers this part uses.
 *
 * Output: "* sent NAME (SIZE bytes): FILE_ID" and "* saved PATH (SHA256)"
 * on success; a server's error reply shows as any other ("! code:
 * message"); a failure found here as "! send: PATH: reason" or
 * "! get: FILE_ID: reason".
 */
#ifndef SA_CLIENT_UI_FILES_H
#define SA_CLIENT_UI_FILES_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "sa_display.h"
#include "ui.h"

/* ---- from ui.c ---- */
/* Writes `line` (then freed) where the client's own notices go. */
void ui_emit_notice(ui *u, strbuf *line);
/* Sends a request built by the caller, who hands it over (NULL: building
 * it ran out of memory); its reply is awaited by the quit sequence.
 * Returns its id, or -1 when not sent. */
int64_t ui_send_request(ui *u, cJSON *msg, int64_t now_ms);

/* ---- from ui_files.c ---- */
/* `user` NULL: to the current room, or with no rooms to nobody. */
void ui_files_send(ui *u, const char *path, const char *user, int64_t now_ms);
void ui_files_list(ui *u, int64_t now_ms);
/* `dir` NULL: the current folder. */
void ui_files_get(ui *u, const char *file_id, const char *dir, int64_t now_ms);
/* Offers a frame to the transfers; 1 when it was theirs and shows nothing
 * (a chunk, a lookup, an ok), 0 when it is to be shown as usual. */
int ui_files_on_frame(ui *u, const cJSON *frame, int64_t now_ms);
/* The connection is gone: the transfers wait. */
void ui_files_on_lost(ui *u);
/* Reconnected (and back in the rooms): the transfers go on where the
 * server and the .part files say. */
void ui_files_resume(ui *u);
/* 1 while a transfer runs. */
int ui_files_active(const ui *u);
/* Says which transfers the quit sequence leaves unfinished, and frees
 * them all. */
void ui_files_abandon(ui *u);
void ui_files_free(ui *u);

#endif
