#include "trace_io.h"


#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "buf.h"
#include "strset.h"
#include "utf8.h"

/* ---- reader ------------------------------------------------------------ */

#define RAW_CHUNK (128u << 10)

struct trace_reader {
	char *path;
	int fd;
	bool own_fd;
	struct trace_reader_opts opts;

	/* byte source */
	bool zstd;
	ZSTD_DStream *zs;
	size_t zret;    /* last ZSTD_decompressStream result: 0 = frame complete */
	bool zstarted;
	unsigned char *raw; /* compressed input */
	size_t raw_len, raw_pos;
	bool raw_eof;
	char *out; /* decoded bytes (or plain bytes) */
	size_t out_len, out_pos, out_cap;
	uint64_t bytes, raw_bytes;

	/* lines */
	struct buf line;
	uint64_t lineno; /* line of the last returned line */
	bool skipping;   /* discarding the rest of an over-long line */
	bool eof;

	/* cross-line state */
	struct strset sessions;
	bool in_session;
	char *sess_id;
	uint64_t sess_line;
	int64_t next_i;
	int64_t turns;
	double last_t;
	int64_t hist_len;
	bool prev_response;
	struct strset calls;
	bool has_system;
	bool any_session;
	bool end_checked;
};

static int read_raw(struct trace_reader *r, struct ar_err *err)
{
	if (r->raw_pos < r->raw_len || r->raw_eof)
		return 0;
	ssize_t n;
	do
		n = read(r->fd, r->raw, RAW_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return ar_err_set(err, AR_EIO, "cannot read trace '%s': %s", r->path, strerror(errno));
	r->raw_len = (size_t)n;
	r->raw_pos = 0;
	r->raw_bytes += (uint64_t)n;
	if (n == 0)
		r->raw_eof = true;
	return 0;
}

/* Refills r->out. Returns 1 with bytes, 0 at the end, -1 on error. */
static int fill(struct trace_reader *r, struct ar_err *err)
{
	for (;;) {
		if (read_raw(r, err) < 0)
			return -1;
		if (!r->zstd) {
			if (r->raw_pos == r->raw_len)
				return 0;
			/* plain: hand the raw chunk over as output */
			memcpy(r->out, r->raw + r->raw_pos, r->raw_len - r->raw_pos);
			r->out_len = r->raw_len - r->raw_pos;
			r->out_pos = 0;
			r->raw_pos = r->raw_len;
			return 1;
		}
		if (r->raw_pos == r->raw_len && r->raw_eof) {
			if (r->zstarted && r->zret != 0)
				return ar_err_set(err, AR_EFORMAT,
						  "%s: zstd: truncated frame (the file ends inside a frame)",
						  r->path);
			return 0;
		}
		ZSTD_inBuffer in = {r->raw, r->raw_len, r->raw_pos};
		ZSTD_outBuffer o = {r->out, r->out_cap, 0};
		size_t ret = ZSTD_decompressStream(r->zs, &o, &in);
		if (ZSTD_isError(ret))
			return ar_err_set(err, AR_EFORMAT, "%s: zstd: %s", r->path,
					  ZSTD_getErrorName(ret));
		r->zstarted = true;
		r->zret = ret;
		r->raw_pos = in.pos;
		if (o.pos) {
			r->out_len = o.pos;
			r->out_pos = 0;
			return 1;
		}
	}
}

int trace_reader_open(struct trace_reader **out, const char *path, const struct trace_reader_opts *opts,
		      struct ar_err *err)
{
	*out = NULL;
	struct trace_reader *r = calloc(1, sizeof *r);
	if (!r)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	r->fd = -1;
	if (opts)
		r->opts = *opts;
	if (!r->opts.max_line)
		r->opts.max_line = TRACE_DEFAULT_MAX_LINE;
	strset_init(&r->sessions);
	strset_init(&r->calls);
	buf_init(&r->line, r->opts.max_line);
	if (!(r->path = strdup(path)))
		goto oom;
	if (!strcmp(path, "-")) {
		r->fd = STDIN_FILENO;
		free(r->path);
		if (!(r->path = strdup("<stdin>")))
			goto oom;
	} else {
		r->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (r->fd < 0) {
			ar_err_set(err, AR_EIO, "cannot open trace '%s': %s", path, strerror(errno));
			goto fail;
		}
		r->own_fd = true;
		struct stat st;
		if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			ar_err_set(err, AR_EIO, "cannot read trace '%s': is a directory", path);
			goto fail;
		}
	}
	r->out_cap = ZSTD_DStreamOutSize();
	if (r->out_cap < RAW_CHUNK)
		r->out_cap = RAW_CHUNK;
	if (!(r->raw = malloc(RAW_CHUNK)) || !(r->out = malloc(r->out_cap)))
		goto oom;
	/* sniff the magic in the first chunk */
	if (read_raw(r, err) < 0)
		goto fail;
	static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
	if (r->raw_len >= 4 && !memcmp(r->raw, magic, 4)) {
		r->zstd = true;
		if (!(r->zs = ZSTD_createDStream()))
			goto oom;
		ZSTD_initDStream(r->zs);
	}
	*out = r;
	return 0;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory opening '%s'", path);
fail:
	trace_reader_close(r);
	return -1;
}

void trace_reader_close(struct trace_reader *r)
{
	if (!r)
		return;
	if (r->own_fd && r->fd >= 0)
		close(r->fd);
	ZSTD_freeDStream(r->zs);
	free(r->raw);
	free(r->out);
	buf_free(&r->line);
	strset_free(&r->sessions);
	strset_free(&r->calls);
	free(r->sess_id);
	free(r->path);
	free(r);
}

uint64_t trace_reader_line(const struct trace_reader *r) { return r->lineno; }
const char *trace_reader_path(const struct trace_reader *r) { return r->path; }
bool trace_reader_zstd(const struct trace_reader *r) { return r->zstd; }
uint64_t trace_reader_bytes(const struct trace_reader *r) { return r->bytes; }
uint64_t trace_reader_raw_bytes(const struct trace_reader *r) { return r->raw_bytes; }

/* Gets the next physical line into r->line (without the line end).
 * Returns 1 with a line, 0 at EOF, -1 fatal, -2 when the line was too long
 * (skipped up to its end). */
static int next_line(struct trace_reader *r, struct ar_err *err)
{
	buf_reset(&r->line);
	bool too_long = false;
	for (;;) {
		if (r->out_pos == r->out_len) {
			int f = fill(r, err);
			if (f < 0)
				return -1;
			if (f == 0) {
				r->eof = true;
				if (too_long) {
					r->lineno++;
					return -2;
				}
				if (r->line.len) {
					r->lineno++;
					return 1;
				}
				return 0;
			}
		}
		const char *p = r->out + r->out_pos;
		size_t avail = r->out_len - r->out_pos;
		const char *nl = memchr(p, '\n', avail);
		size_t take = nl ? (size_t)(nl - p) : avail;
		r->bytes += take + (nl ? 1 : 0);
		if (!too_long && buf_append(&r->line, p, take) < 0) {
			too_long = true;
			buf_reset(&r->line);
		}
		r->out_pos += take + (nl ? 1 : 0);
		if (nl) {
			r->lineno++;
			return too_long ? -2 : 1;
		}
	}
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Resets the per-session state for a new session line. */
static int begin_session(struct trace_reader *r, const char *id, bool has_system)
{
	free(r->sess_id);
	if (!(r->sess_id = strdup(id)))
		return -1;
	r->in_session = true;
	r->has_system = has_system;
	r->sess_line = r->lineno;
	r->next_i = 0;
	r->turns = 0;
	r->last_t = 0;
	r->hist_len = 0;
	r->prev_response = false;
	strset_clear(&r->calls);
	return 0;
}

static int check_session(struct trace_reader *r, const struct tr_session *s, struct trace_diag *d)
{
	int64_t *seen = strset_values(&r->sessions, s->id);
	if (seen)
		trace_diag_add(d, "id", "duplicate session id '%.80s' (first at line %lld)", s->id,
			       (long long)seen[0]);
	if (s->parent) {
		int64_t *p = strset_values(&r->sessions, s->parent);
		if (!p || (seen && !strcmp(s->parent, s->id)))
			trace_diag_add(d, "parent",
				       "unknown parent session '%.80s' (a parent must appear earlier in the file)",
				       s->parent);
		else if (s->spawned_at_turn >= p[1])
			trace_diag_add(d, "spawned_at_turn", "parent '%.80s' has only %lld turns", s->parent,
				       (long long)p[1]);
	}
	if (!seen) {
		if (strset_add(&r->sessions, s->id) < 0)
			return -1;
		strset_values(&r->sessions, s->id)[0] = (int64_t)r->lineno;
	}
	return begin_session(r, s->id, s->system && *s->system);
}

static int add_calls(struct trace_reader *r, const struct tr_tool_call *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].id && strset_add(&r->calls, c[i].id) < 0)
			return -1;
	return 0;
}

/* The cross-line rules for one turn (FORMAT.md section 7). */
static int check_turn(struct trace_reader *r, const struct tr_turn *t, struct trace_diag *d)
{
	if (t->i != r->next_i)
		trace_diag_add(d, "i", "expected %lld, got %lld", (long long)r->next_i, (long long)t->i);
	/* resynchronise on the index given, so one gap gives one error */
	r->next_i = (t->i >= 0 ? t->i : r->next_i) + 1;
	r->turns++;
	int64_t *sv = strset_values(&r->sessions, r->sess_id);
	if (sv)
		sv[1] = r->turns;
	if (t->has_t) {
		if (t->t < r->last_t)
			trace_diag_add(d, "t", "%g is less than the previous turn's %g", t->t, r->last_t);
		else
			r->last_t = t->t;
	}
	if (r->turns > 1 && r->prev_response)
		r->hist_len++;
	if (t->keep >= 0) {
		if (t->keep > r->hist_len)
			trace_diag_add(d, "keep", "%lld exceeds history length %lld", (long long)t->keep,
				       (long long)r->hist_len);
		else
			r->hist_len = t->keep;
	}
	r->hist_len += (int64_t)t->n_append;
	for (size_t k = 0; k < t->n_append; k++) {
		const struct tr_message *m = &t->append[k];
		if (m->role == TR_TOOL && m->tool_call_id && !strset_has(&r->calls, m->tool_call_id)) {
			char f[48];
			snprintf(f, sizeof f, "append[%zu].tool_call_id", k);
			trace_diag_add(d, f, "tool result for unknown call '%.80s'", m->tool_call_id);
		}
		if (add_calls(r, m->calls, m->n_calls) < 0)
			return -1;
	}
	if (r->hist_len == 0 && !r->has_system)
		trace_diag_add(d, "append", "empty prompt (no system prompt and no history)");
	r->prev_response = t->response != NULL;
	if (t->response && add_calls(r, t->response->calls, t->response->n_calls) < 0)
		return -1;
	return 0;
}

int trace_reader_next(struct trace_reader *r, struct trace_item *item, struct trace_diag *d,
		      struct ar_err *err)
{
	memset(item, 0, sizeof *item);
	trace_diag_clear(d);
	for (;;) {
		int l = r->eof ? 0 : next_line(r, err);
		if (l == -1)
			return TRACE_FATAL;
		if (l == 0) {
			if (!r->any_session && !r->end_checked) {
				r->end_checked = true;
				r->lineno = 0; /* a file-level problem */
				trace_diag_add(d, "", "no session in file");
				return TRACE_BAD;
			}
			return TRACE_EOF;
		}
		if (l == -2) {
			trace_diag_add(d, "", "line longer than %zu bytes", r->opts.max_line);
			if (r->in_session) {
				r->next_i++; /* most likely a turn: keep the count so one bad line gives one error */
				r->turns++;
			}
			return TRACE_BAD;
		}
		const char *s = r->line.data;
		size_t n = r->line.len;
		if (n && s[n - 1] == '\r')
			n--;
		if (blank(s, n))
			continue;
		size_t bad = utf8_check(s, n);
		if (bad != n) {
			trace_diag_add(d, "", "invalid UTF-8");
			d->p[0].col = (long)bad + 1;
			return TRACE_BAD;
		}
		if (trace_parse_line(s, n, item, d) < 0) {
			if (d->unknown_type && r->opts.lenient) {
				snprintf(d->p[0].msg + strlen(d->p[0].msg), sizeof d->p[0].msg - strlen(d->p[0].msg),
					 ", line skipped");
				d->warning = true;
				return TRACE_SKIPPED;
			}
			/* a broken line still counts as what it says it is, so one bad
			 * line gives one error, not a cascade */
			if (d->line_kind == TRACE_ITEM_TURN && r->in_session) {
				r->next_i++;
				r->turns++;
			} else if (d->line_kind == TRACE_ITEM_SESSION) {
				r->any_session = true;
				begin_session(r, "", true);
			}
			return TRACE_BAD;
		}
		if (item->kind == TRACE_ITEM_SESSION) {
			r->any_session = true;
			if (check_session(r, item->session, d) < 0) {
				trace_item_clear(item);
				return ar_err_set(err, AR_ENOMEM, "out of memory"), TRACE_FATAL;
			}
		} else if (!r->in_session) {
			trace_diag_add(d, "type", "turn before any session line");
		} else if (check_turn(r, item->turn, d) < 0) {
			trace_item_clear(item);
			return ar_err_set(err, AR_ENOMEM, "out of memory"), TRACE_FATAL;
		}
		if (d->n) {
			trace_item_clear(item);
			return TRACE_BAD;
		}
		return TRACE_ITEM;
	}
}

/* ---- writer ------------------------------------------------------------ */

struct trace_writer {
	char *path;
	char *tmp;
	FILE *f;
	bool own;
	bool zst;
	bool direct;
	ZSTD_CCtx *cc;
	struct buf line; /* serialisation scratch */
	struct buf zout; /* compressed scratch */
	bool frame_open;
};

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

int trace_writer_open(struct trace_writer **out, const char *path, int flags, struct ar_err *err)
{
	*out = NULL;
	struct trace_writer *w = calloc(1, sizeof *w);
	if (!w)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	buf_init(&w->line, 0);
	buf_init(&w->zout, 0);
	w->direct = flags & TRACE_WRITER_DIRECT;
	if (!(w->path = strdup(path)))
		goto oom;
	if (!strcmp(path, "-")) {
		w->f = stdout;
		w->direct = true;
	} else {
		w->zst = ends_with(path, ".zst");
		if (w->direct) {
			w->f = fopen(path, "wbe");
			if (!w->f) {
				ar_err_set(err, AR_EIO, "cannot create '%s': %s", path, strerror(errno));
				goto fail;
			}
		} else {
			size_t n = strlen(path) + 16;
			if (!(w->tmp = malloc(n)))
				goto oom;
			snprintf(w->tmp, n, "%s.tmp.XXXXXX", path);
			int fd = mkstemp(w->tmp);
			if (fd < 0) {
				ar_err_set(err, AR_EIO, "cannot create a file beside '%s': %s", path,
					   strerror(errno));
				free(w->tmp);
				w->tmp = NULL;
				goto fail;
			}
			fchmod(fd, 0644);
			if (!(w->f = fdopen(fd, "wb"))) {
				close(fd);
				goto oom;
			}
		}
		w->own = true;
	}
	if (w->zst && !(w->cc = ZSTD_createCCtx()))
		goto oom;
	if (w->cc)
		ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel, 3);
	*out = w;
	return 0;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
fail:
	trace_writer_abort(w);
	return -1;
}

static int wr_io_err(struct trace_writer *w, struct ar_err *err)
{
	return ar_err_set(err, AR_EIO, "cannot write '%s': %s", w->path,
			  errno ? strerror(errno) : "write error");
}

static int zpush(struct trace_writer *w, const void *p, size_t n, ZSTD_EndDirective mode,
		 struct ar_err *err)
{
	size_t outsz = ZSTD_CStreamOutSize();
	if (buf_reserve(&w->zout, outsz) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	ZSTD_inBuffer in = {p, n, 0};
	for (;;) {
		ZSTD_outBuffer o = {w->zout.data, outsz, 0};
		size_t rem = ZSTD_compressStream2(w->cc, &o, &in, mode);
		if (ZSTD_isError(rem))
			return ar_err_set(err, AR_EIO, "zstd compression failed: %s", ZSTD_getErrorName(rem));
		if (o.pos && fwrite(w->zout.data, 1, o.pos, w->f) != o.pos)
			return wr_io_err(w, err);
		if (mode == ZSTD_e_continue ? in.pos == in.size : rem == 0)
			return 0;
	}
}

int trace_writer_line(struct trace_writer *w, const char *line, size_t n, struct ar_err *err)
{
	errno = 0;
	if (w->zst) {
		w->frame_open = true;
		if (zpush(w, line, n, ZSTD_e_continue, err) < 0 || zpush(w, "\n", 1, ZSTD_e_continue, err) < 0)
			return -1;
		return 0;
	}
	if (fwrite(line, 1, n, w->f) != n || fputc('\n', w->f) == EOF)
		return wr_io_err(w, err);
	return 0;
}

int trace_writer_session(struct trace_writer *w, const struct tr_session *s, struct ar_err *err)
{
	buf_reset(&w->line);
	if (tr_session_write(s, &w->line) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory serialising session");
	return trace_writer_line(w, w->line.data, w->line.len, err);
}

int trace_writer_turn(struct trace_writer *w, const struct tr_turn *t, struct ar_err *err)
{
	buf_reset(&w->line);
	if (tr_turn_write(t, &w->line) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory serialising turn");
	return trace_writer_line(w, w->line.data, w->line.len, err);
}

int trace_writer_flush(struct trace_writer *w, struct ar_err *err)
{
	errno = 0;
	if (w->zst && w->frame_open) {
		if (zpush(w, NULL, 0, ZSTD_e_end, err) < 0)
			return -1;
		w->frame_open = false;
	}
	if (fflush(w->f) != 0)
		return wr_io_err(w, err);
	return 0;
}

static void writer_free(struct trace_writer *w)
{
	ZSTD_freeCCtx(w->cc);
	buf_free(&w->line);
	buf_free(&w->zout);
	free(w->path);
	free(w->tmp);
	free(w);
}

int trace_writer_commit(struct trace_writer *w, struct ar_err *err)
{
	int rc = trace_writer_flush(w, err);
	if (rc == 0 && w->own && fsync(fileno(w->f)) != 0 && errno != EINVAL)
		rc = wr_io_err(w, err);
	if (w->own) {
		if (fclose(w->f) != 0 && rc == 0)
			rc = wr_io_err(w, err);
		w->f = NULL;
	}
	if (rc == 0 && w->tmp && rename(w->tmp, w->path) != 0)
		rc = ar_err_set(err, AR_EIO, "cannot rename '%s' to '%s': %s", w->tmp, w->path,
				strerror(errno));
	if (rc != 0 && w->tmp)
		unlink(w->tmp);
	writer_free(w);
	return rc;
}

void trace_writer_abort(struct trace_writer *w)
{
	if (!w)
		return;
	if (w->own && w->f)
		fclose(w->f);
	if (w->tmp)
		unlink(w->tmp);
	writer_free(w);
}
