/*
 * iscsi_tape_stream: tape throughput through a real iSCSI initiator stack (libiscsi). One
 * login; optionally MOVE MEDIUM of a cartridge into the drive; REWIND; COUNT blocks written
 * with WRITE(6) in variable-block mode and a filemark; REWIND; the same blocks read back
 * with READ(6) and compared; the cartridge moved back. bench/iscsi.sh runs it.
 *
 * usage: iscsi_tape_stream [-m MIB] [-b BLOCK_BYTES] [-p random|repeat]
 *                          [-c CHANGER_LUN -s SLOT -d DRIVE_ELEMENT] iscsi://HOST:PORT/IQN/DRIVE_LUN
 *   -m MIB     data to write and read (default 1024)
 *   -b BYTES   block size, a multiple of 8 up to 16 MiB - 1 (default 262144)
 *   -p random  every block different (default); repeat: 64 distinct blocks over and over, as a
 *              second full backup looks to a deduplicating target
 *   -c -s -d   the changer LUN and the element addresses to move the cartridge between
 * Prints "write N MB/s ...", "read N MB/s ..." and "verify ok" or "verify MISMATCH"; exit
 * status 0 only when every command succeeded and the data read back is the data written.
 *
 * build: cc -O2 -Wall -o iscsi_tape_stream iscsi_tape_stream.c $(pkg-config --cflags --libs libiscsi)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

static struct iscsi_context *ctx;

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends one CDB; returns 1 when it ended GOOD. A failure is reported unless quiet. */
static int run(int lun, unsigned char *cdb, int cdb_len, unsigned char *out, int out_len,
	       unsigned char *in, int in_len, int quiet)
{
	int dir = out ? SCSI_XFER_WRITE : in ? SCSI_XFER_READ : SCSI_XFER_NONE;
	struct scsi_task *task = scsi_create_task(cdb_len, cdb, dir, out ? out_len : in_len);
	struct iscsi_data data = { .size = (size_t)out_len, .data = out };

	if (task == NULL || (in && scsi_task_add_data_in_buffer(task, in_len, in) != 0)) {
		fprintf(stderr, "cannot set up a SCSI task\n");
		return 0;
	}
	if (iscsi_scsi_command_sync(ctx, lun, task, out ? &data : NULL) == NULL) {
		fprintf(stderr, "opcode %02x: %s\n", cdb[0], iscsi_get_error(ctx));
		scsi_free_scsi_task(task);
		return 0;
	}
	int good = task->status == SCSI_STATUS_GOOD;
	if (!good && !quiet)
		fprintf(stderr, "opcode %02x: status %02x, sense %x/%04x\n", cdb[0], task->status,
			task->sense.key, task->sense.ascq);
	scsi_free_scsi_task(task);
	return good;
}

/* Block number n's bytes: splitmix64 from the block's seed. */
static void block_bytes(unsigned char *block, int len, uint64_t seed)
{
	uint64_t state = seed * 0xD1342543DE82EF95ull;

	for (int at = 0; at + 8 <= len; at += 8) {
		uint64_t z = (state += 0x9E3779B97F4A7C15ull);

		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		z ^= z >> 31;
		memcpy(block + at, &z, 8);
	}
}

/* Waits out unit attentions (a moved cartridge, a new session); the count bounds a hang. */
static void until_ready(int lun)
{
	unsigned char tur[6] = { 0 };

	for (int tries = 0; tries < 50 && !run(lun, tur, 6, NULL, 0, NULL, 0, 1); tries++)
		usleep(100000);
}

static int move_medium(int changer, int from, int to)
{
	unsigned char cdb[12] = { 0xa5, 0, 0, 0, from >> 8, from & 0xff, to >> 8, to & 0xff };

	until_ready(changer);
	return run(changer, cdb, 12, NULL, 0, NULL, 0, 0);
}

int main(int argc, char **argv)
{
	long mib = 1024;
	int block = 262144, repeat = 0, changer = -1, slot = -1, drive = -1, opt;

	while ((opt = getopt(argc, argv, "m:b:p:c:s:d:")) != -1) {
		switch (opt) {
		case 'm': mib = atol(optarg); break;
		case 'b': block = atoi(optarg); break;
		case 'p': repeat = strcmp(optarg, "repeat") == 0; break;
		case 'c': changer = atoi(optarg); break;
		case 's': slot = atoi(optarg); break;
		case 'd': drive = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || mib <= 0 || block <= 0 || block > 0xffffff || block % 8 != 0
	    || (changer >= 0 && (slot < 0 || drive < 0)))
		goto usage;
	ctx = iscsi_create_context("iqn.2024-01.org.qorestor.bench:tape-stream");
	struct iscsi_url *url = ctx ? iscsi_parse_full_url(ctx, argv[optind]) : NULL;
	if (url == NULL) {
		fprintf(stderr, "bad URL %s\n", argv[optind]);
		return 1;
	}
	iscsi_set_targetname(ctx, url->target);
	iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	if (iscsi_full_connect_sync(ctx, url->portal, url->lun) != 0) {
		fprintf(stderr, "login failed: %s\n", iscsi_get_error(ctx));
		return 1;
	}
	int lun = url->lun;
	unsigned char rewind[6] = { 0x01 };
	unsigned char filemark[6] = { 0x10, 0, 0, 0, 1, 0 };
	unsigned char write6[6] = { 0x0a, 0, block >> 16, (block >> 8) & 0xff, block & 0xff, 0 };
	unsigned char read6[6] = { 0x08, 0, block >> 16, (block >> 8) & 0xff, block & 0xff, 0 };
	unsigned char *expected = malloc((size_t)block), *got = malloc((size_t)block);
	long blocks = mib * 1048576L / block;
	int same = 1;

	if (expected == NULL || got == NULL)
		return 1;
	if (changer >= 0 && !move_medium(changer, slot, drive))
		return 1;
	until_ready(lun);
	if (!run(lun, rewind, 6, NULL, 0, NULL, 0, 0))
		return 1;
	double started = seconds();
	for (long n = 0; n < blocks; n++) {
		block_bytes(expected, block, repeat ? (uint64_t)(n % 64) : (uint64_t)n);
		if (!run(lun, write6, 6, expected, block, NULL, 0, 0))
			return 1;
	}
	if (!run(lun, filemark, 6, NULL, 0, NULL, 0, 0))
		return 1;
	double write_s = seconds() - started;
	if (!run(lun, rewind, 6, NULL, 0, NULL, 0, 0))
		return 1;
	started = seconds();
	for (long n = 0; n < blocks; n++) {
		if (!run(lun, read6, 6, NULL, 0, got, block, 0))
			return 1;
		block_bytes(expected, block, repeat ? (uint64_t)(n % 64) : (uint64_t)n);
		same &= memcmp(expected, got, (size_t)block) == 0;
	}
	double read_s = seconds() - started;
	if (!run(lun, rewind, 6, NULL, 0, NULL, 0, 0))
		return 1;
	if (changer >= 0 && !move_medium(changer, drive, slot))
		return 1;
	double mb = (double)blocks * block / 1e6;
	printf("write %.1f MB/s (%.0f MB in %.2f s)\n", mb / write_s, mb, write_s);
	printf("read %.1f MB/s (%.0f MB in %.2f s)\n", mb / read_s, mb, read_s);
	printf("verify %s\n", same ? "ok" : "MISMATCH");
	iscsi_logout_sync(ctx);
	iscsi_destroy_url(url);
	iscsi_destroy_context(ctx);
	return same ? 0 : 1;
usage:
	fprintf(stderr, "usage: iscsi_tape_stream [-m MIB] [-b BYTES] [-p random|repeat] "
			"[-c CHANGER_LUN -s SLOT -d DRIVE] iscsi://HOST:PORT/IQN/DRIVE_LUN\n");
	return 2;
}
