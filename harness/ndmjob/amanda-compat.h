/*
 * Stand-in for Amanda's amanda.h (and debug.h, amutil.h, conffile.h) when ndmjob is
 * built from ndmp-src alone, outside Amanda's autotools tree. ndmp-src uses these
 * headers for the usual system headers plus a handful of libamanda functions; the
 * prototypes below match Amanda 3.5's common-src, and the functions come from the
 * installed libamanda-*.so at link time.
 */
#ifndef QORESTOR_AMANDA_COMPAT_H
#define QORESTOR_AMANDA_COMPAT_H

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gprintf.h>

/* common-src/debug.h */
void debug_open(char *subdir);
void debug_close(void);
void debug_printf(const char *format, ...) G_GNUC_PRINTF(1, 2);
#define dbopen(subdir) debug_open(subdir)
#define dbclose() debug_close()
#define dbprintf debug_printf
#define DBG_SUBDIR_CLIENT "client"

/* common-src/amutil.h */
char *quote_string_maybe(const char *str, gboolean always);
#define quote_string(str) quote_string_maybe((str), 0)
#define quote_string_always(str) quote_string_maybe((str), 1)
size_t full_read(int fd, void *buf, size_t count);

/* common-src/util.h, conffile.h (config_init returns an enum, config_init_flags is an int) */
void set_pname(char *pname);
char *get_pname(void);
int config_init(int flags, char *config_name);

#endif
