/* Functions POSIX programs call that WASI has no counterpart for. The
 * corpus programs only call them on files named on the command line, which
 * the bench never gives, so failing (ENOSYS) is enough. */
#include <errno.h>
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
