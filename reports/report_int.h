/* report_int: the in-memory model every format renders (internal to reports/).
 *
 * report_model_load reads the store through the same request query the
 * exporters stream (rpt_cols, in the order of RPT_ORDER, by rpt_iter): once
 * to choose the tier turns, once for the figures. Per request only what the
 * summaries need is kept (about 90 bytes), and only for text, md and html;
 * the full rows are streamed, never held.
 *
 * Ownership: the model owns every string in it; report_model_free releases it.
 */
#ifndef AR_REPORT_INT_H
#define AR_REPORT_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "report.h"

#define RPT_NTIERS 4 /* baseline, 32k, 64k, 128k */
extern const char *const rpt_tier_name[RPT_NTIERS];
extern const int64_t rpt_tier_tokens[RPT_NTIERS]; /* 0 for baseline */

enum { RQ_COLD = 0, RQ_WARM = 1, RQ_OTHER = 2 };

/* request columns, in output order (the stable names of csv/json) */
enum rpt_type { RT_INT, RT_REAL, RT_TEXT, RT_BOOL, RT_JSON, RT_TIER };
struct rpt_col {
	const char *name;
	const char *sql; /* expression over requests r, configs c */
	enum rpt_type type;
};
extern const struct rpt_col rpt_cols[];
extern const size_t rpt_ncols;
int rpt_col_find(const char *name); /* index or -1 */

struct rpt_req {
	uint32_t cfg;  /* index into model->cfg */
	uint32_t sess; /* index into model->sess */
	int64_t turn, repeat, depth, mem, in_flight; /* -1 unknown */
	int64_t prompt, cached;                      /* tokens the server reported; -1 unknown */
	double ttft, decode, prefill;                /* NaN unknown */
	uint8_t cache;                               /* RQ_* */
	bool done;                                   /* completed: outcome ok or slo */
	bool failed;                                 /* outcome other than ok */
	uint8_t tiers;                               /* bit t: this turn is tier t of its cache state */
	const char *outcome;                         /* owned by the model's string pool */
};

struct rpt_failure {
	bool found;
	char *session, *cls, *evidence;
	int64_t turn, depth, mem; /* -1 unknown */
};

struct rpt_memmodel {
	bool valid;
	char source[16]; /* rss, host_drop, gpu */
	int64_t baseline, budget, oom_tokens, oom_turn, points; /* -1 unknown */
	double bytes_per_token, r2;                              /* NaN unknown */
};

struct rpt_tierturn {
	int64_t turn; /* -1: no turn in the band */
	uint32_t sess;
	int64_t depth;
};

struct rpt_cfg {
	int64_t id, run_id;
	char *name, *backend, *model, *url, *status;
	bool simulated, hidden;
	struct rpt_failure fail;
	struct rpt_memmodel mem;
	size_t first, n; /* its requests: model->req[first .. first+n) */
	struct rpt_tierturn tier[2][RPT_NTIERS]; /* [RQ_COLD/RQ_WARM][tier] */
	int64_t peak_mem, max_done_depth;
	int64_t repeats; /* distinct repeat indexes */
	bool concurrent; /* some request had in_flight > 1 */
};

struct rpt_run {
	int64_t id;
	char *started, *finished, *status, *tool_version, *command_line;
};

struct rpt_model {
	struct rpt_run *run;
	size_t nrun;
	struct rpt_cfg *cfg;
	size_t ncfg, nshown;
	struct rpt_req *req;
	size_t nreq;
	char **sess;
	size_t nsess;
	char **pool; /* interned outcome strings */
	size_t npool;
	bool concurrent; /* some request had in_flight > 1 */
	bool rows;       /* req holds every request (else only nreq and the per config figures) */
	const struct report_opts *opts;
};

/* filter */
struct rpt_filter;
int rpt_filter_parse(const char *expr, struct rpt_filter **out, struct ar_err *err);
void rpt_filter_free(struct rpt_filter *f);
/* True when the row at the request statement's current step passes. */
bool rpt_filter_pass(const struct rpt_filter *f, sqlite3_stmt *st);

/* The filter's tier conditions, checked against a row's tier bits. */
bool rpt_filter_has_tier(const struct rpt_filter *f);
bool rpt_filter_pass_tier(const struct rpt_filter *f, uint8_t tiers);
/* "baseline+32k" from tier bits ("" for none); n >= 32 */
void rpt_tier_label(uint8_t tiers, char *out, size_t n);

/* Tier selection (definition in report.h), one request at a time: offers
 * a turn of config c (cache RQ_COLD/RQ_WARM, session number, turn, depth)
 * to c->tier; rpt_tier_bits then says which tiers a request's turn is. */
void rpt_tier_consider(struct rpt_cfg *c, int cache, uint32_t sess, int64_t turn, int64_t depth);
uint8_t rpt_tier_bits(const struct rpt_cfg *c, int cache, uint32_t sess, int64_t turn);

/* The filtered request rows in the order of RPT_ORDER, with the compact
 * figures of each (cfg, sess, turn, repeat, depth, cache and, when
 * tiers_known, tiers; tier conditions of the filter are applied then).
 * Sessions are numbered like m->sess. The row's columns: sqlite3_column_*
 * on it->st. next: 1 a row, 0 the end, -1 error. */
struct rpt_iter {
	sqlite3 *db;
	sqlite3_stmt *st;
	struct rpt_filter *f;
	struct rpt_model *m;
	bool tiers_known, new_sess;
	char *prev; /* this row's session id */
	size_t nsess;
	int col[7]; /* positions of the columns the compact figures come from */
	struct rpt_req r;
};
int rpt_iter_open(struct rpt_iter *it, sqlite3 *db, struct rpt_model *m, bool tiers_known, struct ar_err *err);
int rpt_iter_next(struct rpt_iter *it, struct ar_err *err);
void rpt_iter_close(struct rpt_iter *it);

/* The request query (columns rpt_cols; ?1 run id or -1). */
int rpt_query_requests(sqlite3 *db, sqlite3_stmt **out, int64_t run_id, struct ar_err *err);

/* Loads runs, configs and per config figures; with keep_rows also the
 * compact row of every request (text, md, html need them; csv and json
 * do not, so they run in memory independent of the number of requests:
 * the model then holds one name per run of equal session ids). */
int report_model_load(sqlite3 *db, const struct report_opts *o, bool keep_rows, struct rpt_model *m,
		      struct ar_err *err);
void report_model_free(struct rpt_model *m);

/* statistics over completed requests of one cell */
struct rpt_stat {
	size_t n;
	double med, min, max;
	bool oom; /* could not be computed: out of memory */
};
enum rpt_metric { RM_TTFT, RM_DECODE, RM_PREFILL, RM_MEM };
/* Figures of config c, cache state `cache`, tier t. When the tier's turn has
 * no completed request, *why is the failure class seen there (or NULL when
 * the tier has no turn at all). */
struct rpt_stat rpt_cell(const struct rpt_model *m, const struct rpt_cfg *c, int cache, int t, enum rpt_metric k,
			 const char **why);
void rpt_stat_of(double *v, size_t n, struct rpt_stat *s); /* sorts v */
double rpt_percentile(const double *sorted, size_t n, double p);
/* Deepest completed request per repeat: median, min-max, n = repeats. */
struct rpt_stat rpt_deepest(const struct rpt_model *m, const struct rpt_cfg *c);

/* Chart lines. One point per bucket of x (context depth, or turn index
 * when by_turn) of `width` (rpt_bucket_width): x the mean x of the bucket's
 * requests, y their median (over sessions and repeats), lo-hi their min-max,
 * n how many. TTFT and decode: completed warm requests with a value > 0;
 * memory: every request with a reading. Points sorted by x. Returns the
 * count; *out (free it) is NULL when 0 or out of memory (then -1). */
struct rpt_pt {
	double x, y, lo, hi;
	size_t n;
};
double rpt_bucket_width(double xmax, bool by_turn);
long rpt_series(const struct rpt_model *m, const struct rpt_cfg *c, enum rpt_metric k, bool by_turn, double width,
		struct rpt_pt **out);

/* the in-flight buckets of the concurrency table: 1, 2, 3-4, 5-8, ... */
int rpt_inflight_bucket(int64_t in_flight);
void rpt_inflight_label(int b, char *out, size_t n);
/* The prefix-cache hit rate of c's completed warm requests in bucket b:
 * cached / prompt tokens over those whose server reported both; NaN when
 * none did. How sessions competing for the cache show. */
double rpt_inflight_hit(const struct rpt_model *m, const struct rpt_cfg *c, int b);

/* Test hook of report_text: allocation number n (from 0, counting from
 * this call) fails; -1 none. rpt_text_allocs: allocations since. */
void rpt_text_fail_alloc(long n);
long rpt_text_allocs(void);

/* number formatting (into out, n >= 32) */
void rpt_fmt_ms(double v, char *out, size_t n);
void rpt_fmt_rate(double v, char *out, size_t n);
void rpt_fmt_bytes(double v, char *out, size_t n);
void rpt_fmt_tokens(int64_t v, char *out, size_t n);
void rpt_fmt_ratio(double v, char *out, size_t n);

/* the formats */
int report_text(const struct rpt_model *m, bool md, FILE *out, struct ar_err *err);
int report_csv(sqlite3 *db, struct rpt_model *m, FILE *out, struct ar_err *err);
int report_json(sqlite3 *db, struct rpt_model *m, FILE *out, struct ar_err *err);
int report_html(sqlite3 *db, struct rpt_model *m, FILE *out, struct ar_err *err);

/* One CSV field of text s: quoted when it holds , " CR LF or starts or ends
 * with a space; when `text` and it starts with = + - @ TAB or CR, prefixed
 * with ' so that spreadsheets do not run it as a formula (OWASP). */
int rpt_csv_field(struct buf *b, const char *s, bool text);

/* s as HTML text or attribute value: & < > " ' as entities, control
 * characters other than TAB and LF as spaces (NULL appends nothing). */
void rpt_html_esc(struct buf *b, const char *s);

/* A JSON string literal (NULL: null); invalid UTF-8 becomes U+FFFD, U+2028
 * and U+2029 are escaped; with html also < > & ' so that it is safe inside
 * an HTML <script> element (no "</script>"). -1 out of memory. */
int rpt_json_str(struct buf *b, const char *s, bool html);

#endif
