/* Files in and out, safely: runtime/file_io.h. */
#include "runtime/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/error.h"

const char *bllm_file_kind(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

bllm_status bllm_open_input(const char *path, const char *what, int *fd_out, struct stat *st_out)
{
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer forever, before fstat could say what it is. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return bllm_fail(BLLM_ERR_IO, "cannot open %s %s: %s", what, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        int e = errno;
        close(fd);
        return bllm_fail(BLLM_ERR_IO, "cannot stat %s %s: %s", what, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return bllm_fail(BLLM_ERR_IO, "%s %s is %s, not a regular file", what, path, bllm_file_kind(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK)) {
        int e = errno;
        close(fd);
        return bllm_fail(BLLM_ERR_IO, "cannot open %s %s: %s", what, path, strerror(e));
    }
    *fd_out = fd;
    if (st_out)
        *st_out = st;
    return BLLM_OK;
}

bllm_status bllm_fopen_input(const char *path, const char *what, FILE **out)
{
    *out = NULL;
    int fd;
    bllm_status s = bllm_open_input(path, what, &fd, NULL);
    if (s)
        return s;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return bllm_fail(BLLM_ERR_IO, "cannot open %s %s: %s", what, path, strerror(e));
    }
    *out = f;
    return BLLM_OK;
}

/* ------------------------------------------- temporaries and the signals */

/* Paths of the temporaries being written, for the signal handler. A slot is
 * only changed with SIGINT and SIGTERM blocked in the changing thread, and
 * strings are freed after their slot is cleared. */
#define MAX_TRACKED 16
static char *volatile tracked[MAX_TRACKED];
static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction old_int, old_term;
static int handlers_installed;

static void on_fatal_signal(int sig)
{
    int saved = errno;
    for (int i = 0; i < MAX_TRACKED; i++) {
        char *p = tracked[i];
        if (p)
            unlink(p);
    }
    /* then whatever the signal did before: the default (exit) or the
     * program's own handler */
    sigaction(sig, sig == SIGINT ? &old_int : &old_term, NULL);
    errno = saved;
    raise(sig);
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction cur;
    /* a signal the process ignores (nohup) stays ignored */
    if (sigaction(SIGINT, NULL, &cur) == 0 && cur.sa_handler != SIG_IGN) {
        old_int = cur;
        sigaction(SIGINT, &sa, NULL);
    }
    if (sigaction(SIGTERM, NULL, &cur) == 0 && cur.sa_handler != SIG_IGN) {
        old_term = cur;
        sigaction(SIGTERM, &sa, NULL);
    }
    handlers_installed = 1;
}

static void block_fatal(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static int track(char *path)
{
    sigset_t old;
    block_fatal(&old);
    pthread_mutex_lock(&track_lock);
    if (!handlers_installed)
        install_handlers();
    int ok = 0;
    for (int i = 0; i < MAX_TRACKED && !ok; i++)
        if (!tracked[i]) {
            tracked[i] = path;
            ok = 1;
        }
    pthread_mutex_unlock(&track_lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

static void untrack(const char *path)
{
    sigset_t old;
    block_fatal(&old);
    pthread_mutex_lock(&track_lock);
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i] == path)
            tracked[i] = NULL;
    pthread_mutex_unlock(&track_lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

bllm_status bllm_out_begin(bllm_out_file *o, const char *path)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    size_t n = strlen(path);
    o->path = strdup(path);
    o->tmp = malloc(n + sizeof ".tmp-XXXXXX");
    if (!o->path || !o->tmp) {
        bllm_out_discard(o);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    memcpy(o->tmp, path, n);
    memcpy(o->tmp + n, ".tmp-XXXXXX", sizeof ".tmp-XXXXXX");
    o->fd = mkostemp(o->tmp, O_CLOEXEC);
    if (o->fd < 0) {
        int e = errno;
        free(o->tmp);
        o->tmp = NULL;
        bllm_out_discard(o);
        return bllm_fail(BLLM_ERR_IO, "cannot create a file beside %s: %s", path, strerror(e));
    }
    if (!track(o->tmp)) {
        bllm_out_discard(o);
        return bllm_fail(BLLM_ERR_ARG, "more than %d outputs open at once", MAX_TRACKED);
    }
    return BLLM_OK;
}

/* Make the rename durable: sync the directory holding path. */
static void sync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(copy);
}

/* rename without replacing: 0, or -1 with errno (EEXIST when the target
 * exists). */
static int rename_noreplace(const char *from, const char *to)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -1;
#endif
    /* file systems without it: link refuses an existing name atomically */
    if (link(from, to) == 0) {
        unlink(from);
        return 0;
    }
    if (errno == EEXIST)
        return -1;
    struct stat st;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

bllm_status bllm_out_commit(bllm_out_file *o, bool replace)
{
    if (!o->tmp)
        return bllm_fail(BLLM_ERR_ARG, "output %s: nothing to commit", o->path ? o->path : "?");
    bllm_status s = BLLM_OK;
    mode_t mask = umask(0);
    umask(mask);
    if (fsync(o->fd))
        s = bllm_fail(BLLM_ERR_IO, "writing %s: %s", o->tmp, strerror(errno));
    if (!s && fchmod(o->fd, 0666 & ~mask))
        s = bllm_fail(BLLM_ERR_IO, "writing %s: %s", o->tmp, strerror(errno));
    int rc = close(o->fd);
    o->fd = -1;
    if (!s && rc)
        s = bllm_fail(BLLM_ERR_IO, "closing %s: %s", o->tmp, strerror(errno));
    if (!s && (replace ? rename(o->tmp, o->path) : rename_noreplace(o->tmp, o->path))) {
        if (errno == EEXIST)
            s = bllm_fail(BLLM_ERR_IO, "%s exists (appeared while writing); not replaced, pass --force to replace it",
                          o->path);
        else
            s = bllm_fail(BLLM_ERR_IO, "renaming %s to %s: %s", o->tmp, o->path, strerror(errno));
    }
    if (s) {
        bllm_out_discard(o);
        return s;
    }
    untrack(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    sync_dir_of(o->path);
    bllm_out_discard(o);
    return BLLM_OK;
}

void bllm_out_discard(bllm_out_file *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->tmp) {
        unlink(o->tmp);
        untrack(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
    }
    free(o->path);
    o->path = NULL;
}

bllm_status bllm_check_output(const char *out, const char *const *inputs, int n, bool replace)
{
    struct stat so;
    if (stat(out, &so)) {
        if (errno != ENOENT)
            return bllm_fail(BLLM_ERR_IO, "output %s: %s", out, strerror(errno));
        char *copy = strdup(out);
        if (!copy)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        const char *dir = dirname(copy);
        struct stat sd;
        bllm_status s = BLLM_OK;
        if (stat(dir, &sd) || !S_ISDIR(sd.st_mode))
            s = bllm_fail(BLLM_ERR_IO, "output %s: no directory %s", out, dir);
        else if (access(dir, W_OK | X_OK))
            s = bllm_fail(BLLM_ERR_IO, "output %s: cannot write in %s: %s", out, dir, strerror(errno));
        free(copy);
        return s;
    }
    for (int i = 0; i < n; i++) {
        struct stat si;
        if (inputs[i] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
            return bllm_fail(BLLM_ERR_ARG, "output %s is the input %s; write to another file", out, inputs[i]);
    }
    if (!S_ISREG(so.st_mode))
        return bllm_fail(BLLM_ERR_IO, "output %s is %s", out, bllm_file_kind(so.st_mode));
    if (!replace)
        return bllm_fail(BLLM_ERR_IO, "output %s exists; pass --force to replace it", out);
    return BLLM_OK;
}
