/*
 * icount: a QEMU TCG plugin that counts the guest instructions executed between marker
 * system calls, so an emulated inference has a deterministic cost figure.
 *
 * Wall time under emulation says nothing about a device; the number of guest instructions
 * an inference retires does, and it is the same on every run. The guest program brackets
 * each timed inference with close(ICOUNT_BEGIN) / close(ICOUNT_END) — two file descriptors
 * no program opens, so the calls fail harmlessly with EBADF — and the plugin records the
 * instructions executed between each pair. At exit it writes one count per pair to the
 * file named by the plugin argument out=PATH.
 *
 * Counting is inline (one add per translation block, no helper call), so the cost of
 * measuring is small. With one guest thread the count is exact and repeatable; with
 * several the shared counter sums every thread's instructions.
 *
 * The declarations below are our own, written from QEMU's documented plugin API
 * (include/qemu/qemu-plugin.h); Debian's qemu-user 7.2 ships no header. QEMU 7.2 speaks
 * plugin API version 1, which this plugin declares.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ICOUNT_BEGIN 0x6b17be01ULL
#define ICOUNT_END 0x6b17be02ULL
#define MAX_PAIRS 100000

/* --- the part of QEMU's plugin API (version 1) this plugin uses --------------------- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t; /* only passed through, never read */
struct qemu_plugin_tb;

enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index,
                                              int64_t num, uint64_t a1, uint64_t a2,
                                              uint64_t a3, uint64_t a4, uint64_t a5,
                                              uint64_t a6, uint64_t a7, uint64_t a8);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;
/* ------------------------------------------------------------------------------------ */

static uint64_t executed;  /* guest instructions retired so far (all threads) */
static uint64_t begun;     /* `executed` at the last ICOUNT_BEGIN */
static int open_pair;
static uint64_t counts[MAX_PAIRS];
static size_t n_counts;
static char out_path[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu; (void)num; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6;
    (void)a7; (void)a8;
    /* 32-bit guests pass the int argument zero-extended, 64-bit ones as is: both compare equal. */
    uint64_t marker = a1 & 0xffffffffULL;
    if (marker == ICOUNT_BEGIN) {
        begun = executed;
        open_pair = 1;
    } else if (marker == ICOUNT_END && open_pair) {
        if (n_counts < MAX_PAIRS) {
            counts[n_counts++] = executed - begun;
        }
        open_pair = 0;
    }
}

static void write_counts(qemu_plugin_id_t id, void *userdata)
{
    (void)id; (void)userdata;
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (!f) {
        return;
    }
    fprintf(f, "total %" PRIu64 "\n", executed);
    for (size_t i = 0; i < n_counts; i++) {
        fprintf(f, "pair %" PRIu64 "\n", counts[i]);
    }
    if (f != stderr) {
        fclose(f);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                              const qemu_info_t *info,
                                                              int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
