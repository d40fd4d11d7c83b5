/*
 * g_malloc(0) and g_malloc0(0) return NULL in GLib. ndmp-src's XDR translators
 * (ndmp[234]_translate.c) take a NULL from them as "out of memory", so ndmjob never
 * sends a zero-length NDMP_TAPE_WRITE or TAPE_READ and test-tape stops at T-BW
 * whatever the server does. Defined in the executable, these two take precedence over
 * GLib's for ndmjob's own calls; every size (0 included) gets a real block, which
 * g_free() releases with free() as GLib's own allocations.
 */
#include <stdlib.h>

void *g_malloc(size_t size)
{
	void *block = malloc(size > 0 ? size : 1);

	if (block == NULL)
		abort();
	return block;
}

void *g_malloc0(size_t size)
{
	void *block = calloc(size > 0 ? size : 1, 1);

	if (block == NULL)
		abort();
	return block;
}
