/* Functions POSIX programs call that WASI has no counterpart for. The
 * corpus programs only call them on files named on the command line, which
 * the bench never gives, so failing (ENOSYS) is enough. */
#include <errno.h>
#include <stdio.h>
#include <sys/types.h>

int chown(const char *path, uid_t owner, gid_t group) {
    (void)path; (void)owner; (void)group;
    errno = ENOSYS;
    return -1;
}

int fchown(int fd, uid_t owner, gid_t group) {
    (void)fd; (void)owner; (void)group;
    errno = ENOSYS;
    return -1;
}

int chmod(const char *path, mode_t mode) {
    (void)path; (void)mode;
    errno = ENOSYS;
    return -1;
}

int fchmod(int fd, mode_t mode) {
    (void)fd; (void)mode;
    errno = ENOSYS;
    return -1;
}

/* Lua's os and io libraries: no processes or temporary files. */
int system(const char *command) {
    (void)command;
    errno = ENOSYS;
    return -1;
}

char *tmpnam(char *s) {
    (void)s;
    errno = ENOSYS;
    return NULL;
}

FILE *tmpfile(void) {
    errno = ENOSYS;
    return NULL;
}

/* Reopening a stream would renumber descriptors (fd_renumber), which tasks
 * may not import; Lua's io.input(file)/io.output(file) then fail. */
FILE *freopen(const char *path, const char *mode, FILE *stream) {
    (void)path; (void)mode; (void)stream;
    errno = ENOSYS;
    return NULL;
}

/* Lua's os.remove and os.rename: a task has no directory to change. Its
 * build renames them (-Dremove=proctor_remove ...), as libc's own would
 * otherwise be linked too. */
#ifdef PROCTOR_SHIM_PATHS
int remove(const char *path) {
    (void)path;
    errno = ENOSYS;
    return -1;
}

int rename(const char *from, const char *to) {
    (void)from; (void)to;
    errno = ENOSYS;
    return -1;
}
#endif
