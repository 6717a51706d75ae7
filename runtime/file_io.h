/* Files in and out, safely (internal to libbllm and its tools).
 *
 * Inputs: opened without blocking (a FIFO or a device named as a model
 * must be refused at once, not waited on) and only when regular; anything
 * else is refused by what it is ("a directory", "a FIFO", ...).
 *
 * Outputs: written to a unique temporary file in the target's directory
 * (mkstemp), synced, then renamed over the target, so a reader sees the
 * old file or the whole new one, two writers never share a temporary, and
 * a crash leaves no half file under the real name. Temporaries still open
 * are removed on SIGINT and SIGTERM (then the signal's previous action
 * runs) and on every error path. */
#ifndef BLLM_FILE_IO_H
#define BLLM_FILE_IO_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "bllm.h"

/* "a directory", "a FIFO", "a character device", ... for a non-regular
 * st_mode; "a regular file" otherwise. */
const char *bllm_file_kind(mode_t mode);

/* Open path for reading if it is a regular file: *fd (O_CLOEXEC, blocking
 * mode restored) and its stat in *st (may be NULL). what names the file in
 * messages ("model", "calibration text", ...). */
bllm_status bllm_open_input(const char *path, const char *what, int *fd, struct stat *st);
/* The same as a stdio stream ("rb"). */
bllm_status bllm_fopen_input(const char *path, const char *what, FILE **out);

/* An output in progress. */
typedef struct {
    char *path; /* the target */
    char *tmp;  /* the temporary beside it; NULL once committed or discarded */
    int fd;
} bllm_out_file;

/* Create the temporary for target path (in its directory), tracked for
 * removal on SIGINT/SIGTERM. */
bllm_status bllm_out_begin(bllm_out_file *o, const char *path);
/* fsync the data, give the file the mode a new file would get (0666 less
 * the umask) and rename it to the target, then sync the directory. With
 * replace false an existing target is refused (atomically where the file
 * system allows: renameat2 RENAME_NOREPLACE, else link + unlink). On error
 * the temporary is removed. The caller has closed or flushed its own
 * handles to o->fd first. */
bllm_status bllm_out_commit(bllm_out_file *o, bool replace);
/* Remove the temporary (if any) and release o. Safe after commit. */
void bllm_out_discard(bllm_out_file *o);

/* For tools, before long work: refuse an output that is one of the inputs
 * (same file, even under another name) always, and one that exists unless
 * replace. inputs: n paths (missing ones are skipped). */
bllm_status bllm_check_output(const char *out, const char *const *inputs, int n, bool replace);

#endif
