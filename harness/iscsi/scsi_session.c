/*
 * scsi_session: one libiscsi login, then raw SCSI commands read from stdin, one per line,
 * each answered by one line on stdout. The probes (harness/vtl_probe.py) use it to send
 * SMC/SSC CDBs through a real third-party initiator stack without a login per command.
 *
 * usage: scsi_session [-i INITIATOR_IQN] iscsi://[USER%SECRET@]HOST[:PORT]/TARGET_IQN/LUN
 *   (the URL's LUN is the one libiscsi tests at login; commands name their own LUN)
 *
 * request:  LUN CDB_HEX DATA_IN_LENGTH DATA_OUT_HEX|-
 * response: STATUS RESIDUAL SENSE_HEX|- DATA_IN_HEX|-
 *   STATUS    the SCSI status byte in hex (00 GOOD, 02 CHECK CONDITION, ...), or "E" followed
 *             by libiscsi's error text when the command never completed
 *   RESIDUAL  0, uN (N bytes fewer than asked) or oN (N more)
 *   SENSE_HEX the sense data as the target sent it (fixed or descriptor format)
 * A "READY" line follows the login; an error before it exits with status 1.
 *
 * build: cc -O2 -Wall -o scsi_session scsi_session.c $(pkg-config --cflags --libs libiscsi)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

/* The largest data transfer a request may ask for (a tape block of the probes is 64 KiB). */
#define MAX_TRANSFER (16 * 1024 * 1024)

static void put_hex(const unsigned char *bytes, size_t len)
{
	if (len == 0) {
		fputs("-", stdout);
		return;
	}
	for (size_t i = 0; i < len; i++)
		printf("%02x", bytes[i]);
}

/* Decodes hex text into a new buffer; returns its length, or -1 on bad input. */
static long from_hex(const char *text, unsigned char **out)
{
	size_t n = strlen(text);

	*out = NULL;
	if (strcmp(text, "-") == 0)
		return 0;
	if (n % 2 != 0 || n / 2 > MAX_TRANSFER)
		return -1;
	*out = malloc(n / 2 + 1);
	if (*out == NULL)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int byte;

		if (!isxdigit((unsigned char)text[2 * i]) || !isxdigit((unsigned char)text[2 * i + 1])
		    || sscanf(text + 2 * i, "%2x", &byte) != 1)
			return -1;
		(*out)[i] = (unsigned char)byte;
	}
	return (long)(n / 2);
}

static void execute(struct iscsi_context *iscsi, char *line)
{
	char *fields[4];
	char *save = NULL;
	int n = 0;

	for (char *f = strtok_r(line, " \t\r\n", &save); f && n < 4; f = strtok_r(NULL, " \t\r\n", &save))
		fields[n++] = f;
	unsigned char *cdb = NULL, *out = NULL, *in = NULL;
	long cdb_len = n == 4 ? from_hex(fields[1], &cdb) : -1;
	long out_len = n == 4 ? from_hex(fields[3], &out) : -1;
	long in_len = n == 4 ? strtol(fields[2], NULL, 10) : -1;
	if (cdb_len < 6 || cdb_len > 16 || out_len < 0 || in_len < 0 || in_len > MAX_TRANSFER
	    || (in_len > 0 && out_len > 0)) {
		printf("E bad request (want: LUN CDB_HEX DATA_IN_LENGTH DATA_OUT_HEX|-)\n");
		goto done;
	}
	int lun = atoi(fields[0]);
	int direction = out_len ? SCSI_XFER_WRITE : in_len ? SCSI_XFER_READ : SCSI_XFER_NONE;
	struct scsi_task *task = scsi_create_task((int)cdb_len, cdb, direction, (int)(out_len ? out_len : in_len));
	if (task == NULL) {
		printf("E out of memory\n");
		goto done;
	}
	/* Our own data-in buffer: the data of a command that ends in CHECK CONDITION (a read
	 * with ILI or a filemark) stays there, and libiscsi keeps the sense in task->datain. */
	if (in_len > 0) {
		in = calloc(1, (size_t)in_len);
		if (in == NULL || scsi_task_add_data_in_buffer(task, (int)in_len, in) != 0) {
			printf("E cannot add a data-in buffer\n");
			scsi_free_scsi_task(task);
			goto done;
		}
	}
	struct iscsi_data data_out = { .size = (size_t)out_len, .data = out };
	if (iscsi_scsi_command_sync(iscsi, lun, task, out_len ? &data_out : NULL) == NULL) {
		printf("E %s\n", iscsi_get_error(iscsi));
		scsi_free_scsi_task(task);
		goto done;
	}
	long received = in_len;
	printf("%02x ", task->status & 0xff);
	if (task->residual_status == SCSI_RESIDUAL_UNDERFLOW) {
		printf("u%zu ", (size_t)task->residual);
		received = in_len - (long)task->residual;
	} else if (task->residual_status == SCSI_RESIDUAL_OVERFLOW) {
		printf("o%zu ", (size_t)task->residual);
	} else {
		printf("0 ");
	}
	if (received < 0)
		received = 0;
	/* libiscsi stores the sense of a CHECK CONDITION in datain, after its 2-byte length. */
	if (task->status == SCSI_STATUS_CHECK_CONDITION && task->datain.size > 2)
		put_hex(task->datain.data + 2, (size_t)task->datain.size - 2);
	else
		put_hex(NULL, 0);
	putchar(' ');
	put_hex(in, task->status == SCSI_STATUS_GOOD || task->status == SCSI_STATUS_CHECK_CONDITION
			    ? (size_t)received : 0);
	putchar('\n');
	scsi_free_scsi_task(task);
done:
	fflush(stdout);
	free(cdb);
	free(out);
	free(in);
}

int main(int argc, char **argv)
{
	const char *initiator = "iqn.2024-01.org.qorestor.harness:scsi-session";
	int opt;

	while ((opt = getopt(argc, argv, "i:")) != -1) {
		if (opt != 'i')
			goto usage;
		initiator = optarg;
	}
	if (optind != argc - 1)
		goto usage;
	struct iscsi_context *iscsi = iscsi_create_context(initiator);
	if (iscsi == NULL) {
		fprintf(stderr, "scsi_session: cannot create an iSCSI context\n");
		return 1;
	}
	struct iscsi_url *url = iscsi_parse_full_url(iscsi, argv[optind]);
	if (url == NULL) {
		fprintf(stderr, "scsi_session: %s\n", iscsi_get_error(iscsi));
		return 1;
	}
	iscsi_set_targetname(iscsi, url->target);
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "scsi_session: login failed: %s\n", iscsi_get_error(iscsi));
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0)
		execute(iscsi, line);
	free(line);
	iscsi_logout_sync(iscsi);
	iscsi_destroy_url(url);
	iscsi_destroy_context(iscsi);
	return 0;
usage:
	fprintf(stderr, "usage: scsi_session [-i INITIATOR_IQN] iscsi://[USER%%SECRET@]HOST[:PORT]/TARGET_IQN/LUN\n");
	return 1;
}
