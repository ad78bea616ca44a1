#include <libssh2.h>
#include <libssh2_sftp.h>

// Swift cannot import libssh2's function-like macros; these static inline shims stand in for the
// ones MusterSSH uses. Lengths are byte counts (Swift passes utf8.count).

static inline LIBSSH2_CHANNEL *muster_channel_open_session(LIBSSH2_SESSION *session) {
    return libssh2_channel_open_session(session);
}

static inline int muster_channel_exec(LIBSSH2_CHANNEL *channel, const char *command,
                                      unsigned int length) {
    return libssh2_channel_process_startup(channel, "exec", 4, command, length);
}

static inline ssize_t muster_channel_read(LIBSSH2_CHANNEL *channel, char *buffer, size_t length) {
    return libssh2_channel_read(channel, buffer, length);
}

static inline ssize_t muster_channel_read_stderr(LIBSSH2_CHANNEL *channel, char *buffer,
                                                 size_t length) {
    return libssh2_channel_read_stderr(channel, buffer, length);
}

static inline ssize_t muster_channel_write(LIBSSH2_CHANNEL *channel, const char *buffer,
                                           size_t length) {
    return libssh2_channel_write(channel, buffer, length);
}

static inline int muster_session_disconnect(LIBSSH2_SESSION *session, const char *description) {
    return libssh2_session_disconnect(session, description);
}

static inline LIBSSH2_SFTP_HANDLE *muster_sftp_open_file(LIBSSH2_SFTP *sftp, const char *path,
                                                         unsigned int length,
                                                         unsigned long flags, long mode) {
    return libssh2_sftp_open_ex(sftp, path, length, flags, mode, LIBSSH2_SFTP_OPENFILE);
}

static inline int muster_sftp_close(LIBSSH2_SFTP_HANDLE *handle) {
    return libssh2_sftp_close(handle);
}

static const int MUSTER_CHANNEL_WINDOW_DEFAULT = LIBSSH2_CHANNEL_WINDOW_DEFAULT;
