/* A QEMU TCG plugin that counts guest instructions executed between two marker functions.
 *
 *   gcc -shared -fPIC -O2 -DQEMU_PLUGIN_API_VERSION=1 -o libinsn_window.so insn_window.c
 *   qemu-system-arm ... -plugin ./libinsn_window.so,start=0xADDR,stop=0xADDR,out=FILE[,range=LO-HI]...
 *
 * start/stop: addresses of the firmware's `odeflash_window_start` and `odeflash_window_stop`
 * (Thumb bit ignored). A window opens when a translation block beginning at `start` executes and
 * closes at one beginning at `stop`; the instructions of every block executed in between are
 * counted (the markers themselves are not). range=LO-HI (up to 8, end exclusive) additionally
 * counts the instructions inside those address ranges, e.g. a dense-layer kernel. each=1 also
 * writes one `window TOTAL IN_RANGE` line per window (the first 4096 windows).
 *
 * Counting is per translation block, exact as long as no exception leaves a block early (the
 * firmware runs without interrupts), and deterministic: two runs give the same numbers.
 * At exit it writes `windows N`, `total N`, `min N`, `max N`, `range N` lines to `out` (or to
 * QEMU's log when no `out` is given). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

#ifndef QEMU_PLUGIN_API_VERSION
#define QEMU_PLUGIN_API_VERSION 1
#endif

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_API_VERSION;

enum { BLOCK = 0, START = 1, STOP = 2 };
#define MAX_RANGES 8

struct block {
    uint32_t insns;    /* instructions in the block */
    uint32_t in_range; /* of which inside one of the ranges */
    int kind;
};

static uint64_t start_pc = UINT64_MAX, stop_pc = UINT64_MAX;
static uint64_t range_lo[MAX_RANGES], range_hi[MAX_RANGES];
static int n_ranges;
static char *out_path;

static int active, each;
static uint64_t current, current_range, windows, total, min_w = UINT64_MAX, max_w, in_range;
#define MAX_EACH 4096
static uint64_t each_total[MAX_EACH], each_range[MAX_EACH];

static void on_exec(unsigned int vcpu, void *udata)
{
    const struct block *b = udata;
    (void)vcpu;
    if (b->kind == START) {
        active = 1;
        current = 0;
        current_range = 0;
    } else if (b->kind == STOP) {
        if (active) {
            if (windows < MAX_EACH) {
                each_total[windows] = current;
                each_range[windows] = current_range;
            }
            windows++;
            total += current;
            if (current < min_w)
                min_w = current;
            if (current > max_w)
                max_w = current;
        }
        active = 0;
    } else if (active) {
        current += b->insns;
        current_range += b->in_range;
        in_range += b->in_range;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    struct block *b = calloc(1, sizeof *b); /* lives as long as QEMU may run the block */
    uint64_t pc = qemu_plugin_tb_vaddr(tb) & ~(uint64_t)1;
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    if (!b)
        return;
    b->insns = (uint32_t)n;
    b->kind = pc == start_pc ? START : pc == stop_pc ? STOP : BLOCK;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, i));
        for (int r = 0; r < n_ranges; r++)
            if (a >= range_lo[r] && a < range_hi[r]) {
                b->in_range++;
                break;
            }
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void report(qemu_plugin_id_t id, void *udata)
{
    char buf[256];
    (void)id;
    (void)udata;
    snprintf(buf, sizeof buf,
             "windows %" PRIu64 "\ntotal %" PRIu64 "\nmin %" PRIu64 "\nmax %" PRIu64
             "\nrange %" PRIu64 "\n",
             windows, total, windows ? min_w : 0, max_w, in_range);
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (f) {
            fputs(buf, f);
            for (uint64_t i = 0; each && i < windows && i < MAX_EACH; i++)
                fprintf(f, "window %" PRIu64 " %" PRIu64 "\n", each_total[i], each_range[i]);
            fclose(f);
            return;
        }
    }
    qemu_plugin_outs(buf);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "start=", 6)) {
            start_pc = strtoull(a + 6, NULL, 0) & ~(uint64_t)1;
        } else if (!strncmp(a, "stop=", 5)) {
            stop_pc = strtoull(a + 5, NULL, 0) & ~(uint64_t)1;
        } else if (!strncmp(a, "each=", 5)) {
            each = atoi(a + 5);
        } else if (!strncmp(a, "out=", 4)) {
            out_path = strdup(a + 4);
        } else if (!strncmp(a, "range=", 6) && n_ranges < MAX_RANGES) {
            char *end;
            range_lo[n_ranges] = strtoull(a + 6, &end, 0) & ~(uint64_t)1;
            range_hi[n_ranges] = *end == '-' ? strtoull(end + 1, NULL, 0) : 0;
            n_ranges++;
        } else {
            fprintf(stderr, "insn_window: unknown argument `%s`\n", a);
            return -1;
        }
    }
    if (start_pc == UINT64_MAX || stop_pc == UINT64_MAX) {
        fprintf(stderr, "insn_window: start= and stop= are required\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, report, NULL);
    return 0;
}
