/* mkstore: creates a results store with the current schema (store_open, the
 * real migrations) and runs SQL files against it — the fixed stores of the
 * report tests (the .sql files of tests/data/report/).
 * Usage: mkstore OUT.db [FILE.sql...]   ("-" reads SQL from stdin) */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store.h"

static int run_file(struct store *st, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!f) {
		perror(path);
		return -1;
	}
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	if (f != stdin)
		fclose(f);
	char *msg = NULL;
	int rc = sqlite3_exec(store_db(st), b.data ? b.data : "", NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fprintf(stderr, "mkstore: %s: %s\n", path, msg ? msg : "error");
	sqlite3_free(msg);
	buf_free(&b);
	return rc == SQLITE_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: mkstore OUT.db [FILE.sql...]\n");
		return 2;
	}
	struct ar_err err = {0};
	struct store *st = NULL;
	if (store_open(&st, argv[1], 0, &err) < 0) {
		fprintf(stderr, "mkstore: %s\n", err.msg);
		return 1;
	}
	int rc = 0;
	for (int i = 2; i < argc && rc == 0; i++)
		rc = run_file(st, argv[i]);
	/* a reader opening it read-only must not need the WAL */
	sqlite3_exec(store_db(st), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	store_close(st);
	return rc ? 1 : 0;
}
