/* Prints the token estimator's features of each file as TSV (one row per
 * file), for tests/real/fit-tokest.py. Usage: tokest_features FILE... */
#include <stdio.h>
#include <stdlib.h>

#include "tokest.h"

int main(int argc, char **argv)
{
	printf("file");
	for (int k = 0; k < TOKEST_NFEATURES; k++)
		printf("\t%s", tokest_feature_name(k));
	printf("\test\n");
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 1;
		}
		size_t cap = 1 << 20, n = 0, got;
		char *buf = malloc(cap);
		while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
			if ((n += got) == cap)
				buf = realloc(buf, cap *= 2);
		fclose(f);
		if (!buf)
			return 1;
		double feat[TOKEST_NFEATURES];
		tokest_features(buf, n, feat);
		printf("%s", argv[i]);
		for (int k = 0; k < TOKEST_NFEATURES; k++)
			printf("\t%.0f", feat[k]);
		printf("\t%lld\n", (long long)tokest_text(buf, n));
		free(buf);
	}
	return 0;
}
