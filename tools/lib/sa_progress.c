#include "sa_progress.h"

#include <string.h>
#include <unistd.h>

void sa_format_bytes(uint64_t bytes, char *out, size_t outlen)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) {
        snprintf(out, outlen, "%u B", (unsigned)bytes);
        return;
    }
    double value = (double)bytes / 1024.0;
    size_t unit = 0;
    /* 1023.95 would print as "1024.0": move up a unit before that. */
    while (value >= 1023.95 && unit + 1 < sizeof units / sizeof units[0]) {
        value /= 1024.0;
        unit++;
    }
    snprintf(out, outlen, "%.1f %s", value, units[unit]);
}

void sa_format_duration(int64_t seconds, char *out, size_t outlen)
{
    if (seconds < 0) {
        snprintf(out, outlen, "--:--");
        return;
    }
    long long h = seconds / 3600, m = seconds / 60 % 60, s = seconds % 60;
    if (h > 0)
        snprintf(out, outlen, "%lld:%02lld:%02lld", h, m, s);
    else
        snprintf(out, outlen, "%lld:%02lld", m, s);
}

void sa_progress_format(char *out, size_t outlen, uint64_t done, uint64_t total,
                        uint64_t moved, int64_t elapsed_ms)
{
    double fraction = total == 0 ? 1.0 : done >= total ? 1.0 : (double)done / (double)total;
    char bar[SA_PROGRESS_BAR_WIDTH + 1];
    size_t filled = (size_t)(fraction * SA_PROGRESS_BAR_WIDTH);
    memset(bar, '#', filled);
    memset(bar + filled, '-', SA_PROGRESS_BAR_WIDTH - filled);
    bar[SA_PROGRESS_BAR_WIDTH] = '\0';

    char done_text[32], total_text[32], rate_text[40], eta_text[32];
    sa_format_bytes(done, done_text, sizeof done_text);
    sa_format_bytes(total, total_text, sizeof total_text);
    int64_t eta = -1;
    if (elapsed_ms > 0 && moved > 0) {
        double rate = (double)moved * 1000.0 / (double)elapsed_ms;
        char per_second[32];
        sa_format_bytes((uint64_t)rate, per_second, sizeof per_second);
        snprintf(rate_text, sizeof rate_text, "%s/s", per_second);
        uint64_t left = done >= total ? 0 : total - done;
        double seconds = (double)left / rate;
        eta = seconds > 359999.0 ? -1 : (int64_t)(seconds + 0.5);
    } else {
        snprintf(rate_text, sizeof rate_text, "-- B/s");
    }
    if (fraction >= 1.0)
        eta = 0;
    sa_format_duration(eta, eta_text, sizeof eta_text);
    snprintf(out, outlen, "[%s] %3d%%  %s/%s  %s  ETA %s", bar, (int)(fraction * 100.0),
             done_text, total_text, rate_text, eta_text);
}

/* Copies at most SA_PROGRESS_LABEL_MAX bytes of `label`, cut before a
 * UTF-8 continuation byte, with "..." when it was cut. */
static void set_label(sa_progress *p, const char *label)
{
    size_t len = strlen(label);
    if (len <= SA_PROGRESS_LABEL_MAX) {
        memcpy(p->label, label, len + 1);
        return;
    }
    size_t cut = SA_PROGRESS_LABEL_MAX;
    while (cut > 0 && ((unsigned char)label[cut] & 0xC0) == 0x80)
        cut--;
    memcpy(p->label, label, cut);
    memcpy(p->label + cut, "...", 4);
}

void sa_progress_init(sa_progress *p, FILE *out, const char *label, uint64_t total,
                      uint64_t first, int64_t now_ms)
{
    memset(p, 0, sizeof *p);
    p->out = out && isatty(fileno(out)) ? out : NULL;
    set_label(p, label);
    p->total = total;
    p->first = first;
    p->start_ms = now_ms;
    p->last_draw_ms = -1;
}

static void draw(sa_progress *p, uint64_t done, int64_t now_ms)
{
    char figures[160];
    uint64_t moved = done > p->first ? done - p->first : 0;
    sa_progress_format(figures, sizeof figures, done, p->total, moved, now_ms - p->start_ms);
    /* "\r" goes back to the start of the line, "\033[K" clears what a
     * longer earlier line left. A failed write only loses the bar. */
    (void)fprintf(p->out, "\r%s %s\033[K", p->label, figures);
    (void)fflush(p->out);
    p->drawn = 1;
    p->last_draw_ms = now_ms;
}

void sa_progress_update(sa_progress *p, uint64_t done, int64_t now_ms)
{
    if (!p->out)
        return;
    if (p->last_draw_ms >= 0 && now_ms - p->last_draw_ms < SA_PROGRESS_INTERVAL_MS)
        return;
    draw(p, done, now_ms);
}

void sa_progress_finish(sa_progress *p, uint64_t done, int64_t now_ms)
{
    if (!p->out)
        return;
    draw(p, done, now_ms);
    sa_progress_break(p);
}

void sa_progress_break(sa_progress *p)
{
    if (!p->out || !p->drawn)
        return;
    (void)fputc('\n', p->out);
    (void)fflush(p->out);
    p->drawn = 0;
}
