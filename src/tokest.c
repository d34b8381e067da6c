#include "tokest.h"

#include <math.h>
#include <stdbool.h>

/* Fitted weights (tokens per feature unit); see tokest.h. */
static const double weights[TOKEST_NFEATURES] = {
	[TOKEST_W1] = 1.10, [TOKEST_W2] = 0.80, [TOKEST_W3] = 1.75, [TOKEST_W_MARK] = 0.87,
	[TOKEST_CASE_SPLIT] = 0.45, [TOKEST_DIGIT] = 1.00, [TOKEST_PUNCT_RUN] = 1.02, [TOKEST_SPACE_RUN] = 1.21,
	[TOKEST_MB2] = 1.00, [TOKEST_MB3] = 1.00, [TOKEST_MB4] = 2.00,
};

static const char *const names[TOKEST_NFEATURES] = {
	"w1", "w2", "w3", "w_mark", "case_split", "digit", "punct_run", "space_run", "mb2", "mb3", "mb4",
};

const char *tokest_feature_name(enum tokest_feature f)
{
	return (unsigned)f < TOKEST_NFEATURES ? names[f] : "?";
}

enum cls { C_LETTER, C_DIGIT, C_PUNCT, C_SPACE, C_NL, C_MB };

static enum cls classify(unsigned char c)
{
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return C_LETTER;
	if (c >= '0' && c <= '9')
		return C_DIGIT;
	if (c == ' ' || c == '\t')
		return C_SPACE;
	if (c == '\n' || c == '\r')
		return C_NL;
	if (c >= 0x80)
		return C_MB;
	return C_PUNCT; /* includes other control characters */
}

void tokest_features(const char *str, size_t n, double *out)
{
	const unsigned char *s = (const unsigned char *)str;
	for (int k = 0; k < TOKEST_NFEATURES; k++)
		out[k] = 0;
	size_t i = 0;
	bool joined = false;      /* a single mark before this letter run joined it */
	while (i < n) {
		enum cls c = classify(s[i]);
		size_t j = i + 1;
		switch (c) {
		case C_LETTER: {
			size_t len = 1;
			double splits = 0;
			while (j < n && classify(s[j]) == C_LETTER) {
				if (s[j] >= 'A' && s[j] <= 'Z' && s[j - 1] >= 'a' && s[j - 1] <= 'z')
					splits++;
				j++;
				len++;
			}
			out[len <= 3 ? TOKEST_W1 : len <= 7 ? TOKEST_W2 : TOKEST_W3]++;
			if (joined)
				out[TOKEST_W_MARK]++;
			out[TOKEST_CASE_SPLIT] += splits;
			break;
		}
		case C_DIGIT:
			while (j < n && classify(s[j]) == C_DIGIT)
				j++;
			out[TOKEST_DIGIT] += sqrt((double)((j - i + 2) / 3) * (double)(j - i));
			break;
		case C_PUNCT:
			while (j < n && classify(s[j]) == C_PUNCT)
				j++;
			/* a single mark directly before a word joins that word's piece */
			if (j - i == 1 && j < n && classify(s[j]) == C_LETTER) {
				joined = true;
				i = j;
				continue;
			}
			out[TOKEST_PUNCT_RUN]++;
			break;
		case C_SPACE:
			while (j < n && classify(s[j]) == C_SPACE)
				j++;
			/* one blank joins the next piece; blanks before a line end join it */
			if (j - i == 1 || (j < n && classify(s[j]) == C_NL))
				break;
			out[TOKEST_SPACE_RUN]++;
			break;
		case C_NL:
			while (j < n && classify(s[j]) == C_NL)
				j++;
			/* line ends cost nothing of their own in the fit: after punctuation
			 * they join it (");\n" is one piece), before indentation they join
			 * the blank run */
			break;
		case C_MB: {
			unsigned char b = s[i];
			size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
			j = i + len <= n ? i + len : n;
			if (len == 4)
				out[TOKEST_MB4]++;
			else if (len == 3)
				out[TOKEST_MB3]++;
			else
				out[TOKEST_MB2]++;
			break;
		}
		}
		joined = false;
		i = j;
	}
}

int64_t tokest_text(const char *s, size_t n)
{
	if (!n)
		return 0;
	double f[TOKEST_NFEATURES];
	tokest_features(s, n, f);
	double t = 0;
	for (int k = 0; k < TOKEST_NFEATURES; k++)
		t += weights[k] * f[k];
	int64_t r = (int64_t)llround(t);
	return r < 1 ? 1 : r;
}
