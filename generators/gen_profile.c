#include "gen_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *const role_names[GEN_NROLES] = {
	"read", "search", "list", "test", "build", "shell", "edit", "write", "todo", "task", "web",
};

const char *gen_role_name(enum gen_role r) { return (unsigned)r < GEN_NROLES ? role_names[r] : "?"; }

bool gen_role_elastic(enum gen_role r)
{
	switch (r) {
	case GEN_ROLE_READ:
	case GEN_ROLE_SEARCH:
	case GEN_ROLE_LIST:
	case GEN_ROLE_TEST:
	case GEN_ROLE_BUILD:
	case GEN_ROLE_SHELL:
	case GEN_ROLE_WEB:
		return true;
	default:
		return false;
	}
}

static const char *const builtin[] = {"claude-code", "codex", "aider", "generic", NULL};
const char *const *gen_profile_builtin(void) { return builtin; }

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

int gen_profile_path(const char *style, char *out, size_t n, struct ar_err *err)
{
	if (!style || !*style)
		return ar_err_set(err, AR_EINVAL, "empty style name");
	if (strchr(style, '/') || ends_with(style, ".yaml") || ends_with(style, ".yml") || ends_with(style, ".json")) {
		snprintf(out, n, "%s", style);
		return 0;
	}
	for (const char *p = style; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return ar_err_set(err, AR_EINVAL, "unknown style '%s' (known: claude-code, codex, aider, generic; "
						       "or a path to a profile file)", style);
	snprintf(out, n, "%s/generators/styles/%s.yaml", AR_SOURCE_DIR, style);
	return 0;
}

void gen_profile_free(struct gen_profile *p)
{
	if (!p)
		return;
	char **strs[] = {&p->path, &p->name, &p->description, &p->model, &p->home, &p->call_id_prefix, &p->system,
			 &p->environment, &p->task_template, &p->compact_prompt, &p->compact_continue, &p->sub_system,
			 &p->map_intro, &p->map_ack, &p->files_intro, &p->files_ack, &p->added, &p->followup};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		free(*strs[i]);
	for (int i = 0; i < p->n_first_user; i++)
		free(p->first_user[i]);
	free(p->first_user);
	for (int i = 0; i < p->n_tool_notes; i++)
		free(p->tool_notes[i]);
	free(p->tool_notes);
	for (int i = 0; i < p->n_sub_tools; i++)
		free(p->sub_tools[i]);
	free(p->sub_tools);
	for (int r = 0; r < GEN_NROLES; r++) {
		free(p->roles[r].tool);
		free(p->roles[r].args);
		free(p->roles[r].args_range);
		free(p->roles[r].result);
		free(p->roles[r].ask);
	}
	cJSON_Delete(p->tools);
	free(p);
}

/* ---- typed reads ------------------------------------------------------- */

struct ld {
	const struct config_doc *doc;
	struct ar_err *err;
};

static int check_keys(struct ld *l, const cJSON *obj, const char *what, const char *const *allowed)
{
	if (!cJSON_IsObject(obj))
		return config_error(l->doc, obj, what, l->err, "expected a mapping");
	for (const cJSON *m = obj->child; m; m = m->next) {
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(*a, m->string))
				ok = true;
		if (!ok) {
			char list[400] = "";
			for (const char *const *a = allowed; *a; a++)
				snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == allowed ? "" : ", ", *a);
			return config_error(l->doc, m, m->string, l->err, "unknown field in %s (known: %s)", what, list);
		}
	}
	return 0;
}

static int get_str(struct ld *l, const cJSON *obj, const char *field, int required, char **out)
{
	const char *s = NULL;
	if (config_get_str(l->doc, obj, field, required, &s, l->err) < 0)
		return -1;
	if (!s)
		return 0;
	free(*out);
	if (!(*out = strdup(s)))
		return ar_err_set(l->err, AR_ENOMEM, "out of memory");
	return 0;
}

static int get_dist(struct ld *l, const cJSON *obj, const char *field, int required, int64_t scale, int64_t lo,
		    struct gen_dist *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
	if (!v) {
		if (required)
			return config_error(l->doc, obj, field, l->err, "missing required field");
		return 0;
	}
	return gen_dist_parse(l->doc, v, field, scale, lo, out, l->err);
}

static int get_strs(struct ld *l, const cJSON *obj, const char *field, char ***out, int *n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
	if (!v)
		return 0;
	if (!cJSON_IsArray(v))
		return config_error(l->doc, v, field, l->err, "expected a list of strings");
	int cnt = cJSON_GetArraySize(v);
	char **a = calloc((size_t)(cnt ? cnt : 1), sizeof *a);
	if (!a)
		return ar_err_set(l->err, AR_ENOMEM, "out of memory");
	*out = a;
	*n = 0;
	for (const cJSON *e = v->child; e; e = e->next) {
		if (!cJSON_IsString(e))
			return config_error(l->doc, e, field, l->err, "expected a string");
		if (!(a[(*n)++] = strdup(e->valuestring)))
			return ar_err_set(l->err, AR_ENOMEM, "out of memory");
	}
	return 0;
}

static int get_int(struct ld *l, const cJSON *obj, const char *field, int required, int64_t min, int64_t max,
		   int64_t *out)
{
	return config_get_int(l->doc, obj, field, required, min, max, out, l->err);
}

/* ---- sections ---------------------------------------------------------- */

static int load_tools(struct ld *l, struct gen_profile *p, const cJSON *v)
{
	p->tools = cJSON_CreateArray();
	if (!p->tools)
		return ar_err_set(l->err, AR_ENOMEM, "out of memory");
	if (!v)
		return 0;
	if (!cJSON_IsArray(v))
		return config_error(l->doc, v, "tools", l->err, "expected a list of tools");
	static const char *const keys[] = {"name", "description", "parameters", NULL};
	for (const cJSON *t = v->child; t; t = t->next) {
		if (check_keys(l, t, "a tool", keys) < 0)
			return -1;
		const char *name = NULL, *desc = NULL;
		if (config_get_str(l->doc, t, "name", 1, &name, l->err) < 0 ||
		    config_get_str(l->doc, t, "description", 0, &desc, l->err) < 0)
			return -1;
		for (const cJSON *o = p->tools->child; o; o = o->next)
			if (!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "function"), "name")->valuestring, name))
				return config_error(l->doc, t, "name", l->err, "duplicate tool name '%s'", name);
		const cJSON *params = cJSON_GetObjectItemCaseSensitive(t, "parameters");
		if (params && !cJSON_IsObject(params))
			return config_error(l->doc, params, "parameters", l->err, "expected a JSON Schema object");
		cJSON *tool = cJSON_CreateObject();
		cJSON *fn = cJSON_CreateObject();
		if (!tool || !fn) {
			cJSON_Delete(tool);
			cJSON_Delete(fn);
			return ar_err_set(l->err, AR_ENOMEM, "out of memory");
		}
		cJSON_AddItemToArray(p->tools, tool);
		cJSON_AddStringToObject(tool, "type", "function");
		cJSON_AddItemToObject(tool, "function", fn);
		cJSON_AddStringToObject(fn, "name", name);
		cJSON_AddStringToObject(fn, "description", desc ? desc : "");
		if (params)
			cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(params, 1));
	}
	return 0;
}

static bool has_tool(const struct gen_profile *p, const char *name)
{
	for (const cJSON *o = p->tools ? p->tools->child : NULL; o; o = o->next) {
		const cJSON *n = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "function"), "name");
		if (n && cJSON_IsString(n) && !strcmp(n->valuestring, name))
			return true;
	}
	return false;
}

static int load_role(struct ld *l, struct gen_profile *p, enum gen_role r, const cJSON *v)
{
	static const char *const keys[] = {"tool", "args", "args_range", "result", "ask", "weight", "size", "args_tokens",
					   "tool_time", "max_tokens", "numbering", "range_numbering", "format", "basis", NULL};
	struct gen_role_def *d = &p->roles[r];
	const char *name = role_names[r];
	if (check_keys(l, v, name, keys) < 0)
		return -1;
	d->present = true;
	d->weight = 10;
	d->max_tokens = 25000;
	d->size = gen_dist_fixed(200);
	d->args_tokens = gen_dist_fixed(60);
	d->tool_ms = gen_dist_fixed(100);
	if (get_str(l, v, "tool", !p->chat, &d->tool) < 0 || get_str(l, v, "args", !p->chat, &d->args) < 0 ||
	    get_str(l, v, "args_range", 0, &d->args_range) < 0 || get_str(l, v, "result", 0, &d->result) < 0 ||
	    get_str(l, v, "ask", p->chat, &d->ask) < 0 ||
	    get_int(l, v, "weight", 0, 0, 1000000, &d->weight) < 0 ||
	    get_int(l, v, "max_tokens", 0, 16, 10000000, &d->max_tokens) < 0 ||
	    get_dist(l, v, "size", 0, 1, 1, &d->size) < 0 || get_dist(l, v, "args_tokens", 0, 1, 1, &d->args_tokens) < 0 ||
	    get_dist(l, v, "tool_time", 0, 1000, 0, &d->tool_ms) < 0)
		return -1;
	if (!d->result && !(p->chat && (r == GEN_ROLE_EDIT)))
		if (!(d->result = strdup("{body}")))
			return ar_err_set(l->err, AR_ENOMEM, "out of memory");
	if (!p->chat && !has_tool(p, d->tool))
		return config_error(l->doc, cJSON_GetObjectItemCaseSensitive(v, "tool"), "tool", l->err,
				    "role '%s' uses tool '%s', which is not in tools", name, d->tool);
	const char *num = NULL, *rnum = NULL, *fmt = NULL;
	if (config_get_str(l->doc, v, "numbering", 0, &num, l->err) < 0 ||
	    config_get_str(l->doc, v, "range_numbering", 0, &rnum, l->err) < 0 ||
	    config_get_str(l->doc, v, "format", 0, &fmt, l->err) < 0)
		return -1;
	static const struct {
		const char *name;
		enum gen_numbering n;
	} nums[] = {{"none", GEN_NUM_NONE}, {"arrow", GEN_NUM_ARROW}, {"tab", GEN_NUM_TAB}, {"L", GEN_NUM_NL}};
	d->numbering = GEN_NUM_NONE;
	for (int pass = 0; pass < 2; pass++) {
		const char *s = pass ? rnum : num;
		const char *field = pass ? "range_numbering" : "numbering";
		enum gen_numbering *dst = pass ? &d->range_numbering : &d->numbering;
		if (pass)
			d->range_numbering = d->numbering;
		if (!s)
			continue;
		bool ok = false;
		for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
			if (!strcmp(s, nums[i].name)) {
				*dst = nums[i].n;
				ok = true;
			}
		if (!ok)
			return config_error(l->doc, cJSON_GetObjectItemCaseSensitive(v, field), field, l->err,
					    "unknown numbering '%s' (none, arrow, tab, L)", s);
	}
	d->grep = GEN_GREP_LINES;
	if (fmt) {
		if (!strcmp(fmt, "files"))
			d->grep = GEN_GREP_FILES;
		else if (strcmp(fmt, "lines"))
			return config_error(l->doc, cJSON_GetObjectItemCaseSensitive(v, "format"), "format", l->err,
					    "unknown format '%s' (lines, files)", fmt);
	}
	if (d->size.min < 1)
		d->size.min = 1;
	return 0;
}

static int load_prefix(struct ld *l, struct gen_profile *p, const cJSON *v)
{
	static const char *const keys[] = {"system", "environment", "system_tokens", "notes_at", "notes_tokens",
					   "first_user", "task", "tools_tokens", "tool_notes", "basis", NULL};
	if (check_keys(l, v, "prefix", keys) < 0)
		return -1;
	const char *at = NULL;
	if (get_str(l, v, "system", 0, &p->system) < 0 || get_str(l, v, "environment", 0, &p->environment) < 0 ||
	    get_int(l, v, "system_tokens", 0, 0, 10000000, &p->system_tokens) < 0 ||
	    get_dist(l, v, "notes_tokens", 0, 1, 0, &p->notes_tokens) < 0 ||
	    get_strs(l, v, "first_user", &p->first_user, &p->n_first_user) < 0 ||
	    get_str(l, v, "task", 0, &p->task_template) < 0 ||
	    get_int(l, v, "tools_tokens", 0, 0, 10000000, &p->tools_tokens) < 0 ||
	    get_strs(l, v, "tool_notes", &p->tool_notes, &p->n_tool_notes) < 0 ||
	    config_get_str(l->doc, v, "notes_at", 0, &at, l->err) < 0)
		return -1;
	if (at) {
		if (!strcmp(at, "system"))
			p->notes_at = GEN_NOTES_SYSTEM;
		else if (!strcmp(at, "first_user"))
			p->notes_at = GEN_NOTES_FIRST_USER;
		else if (!strcmp(at, "none"))
			p->notes_at = GEN_NOTES_NONE;
		else
			return config_error(l->doc, cJSON_GetObjectItemCaseSensitive(v, "notes_at"), "notes_at", l->err,
					    "unknown value '%s' (system, first_user, none)", at);
	}
	return 0;
}

int gen_profile_load(struct gen_profile **out, const char *path, struct ar_err *err)
{
	*out = NULL;
	struct config_doc *doc = NULL;
	struct gen_profile *p = NULL;
	int rc = -1;
	if (config_load(&doc, path, err) < 0) {
		if (err && err->code == AR_EIO) {
			/* keep the errno text; the message is rebuilt from a copy */
			char why[AR_ERR_MSG_MAX];
			const char *colon = strstr(err->msg, "': ");
			snprintf(why, sizeof why, "%s", colon ? colon + 3 : err->msg);
			ar_err_set(err, AR_EINVAL, "cannot read style profile '%s': %s", path, why);
		}
		goto out;
	}
	struct ld l = {doc, err};
	const cJSON *root = config_root(doc);
	static const char *const keys[] = {"name", "description", "model", "mode", "home", "call_id", "languages",
					   "prefix", "tools", "roles", "session", "output", "timing", "compaction",
					   "subagent", "chat", "basis", NULL};
	if (check_keys(&l, root, "the profile", keys) < 0)
		goto out;
	if (!(p = calloc(1, sizeof *p)) || !(p->path = strdup(path))) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	/* defaults */
	p->call_id_len = 24;
	p->growth_per_turn = 3000;
	p->calls_per_task = gen_dist_fixed(6);
	p->task_tokens = gen_dist_fixed(60);
	p->interject_tokens = gen_dist_fixed(30);
	p->out_call = gen_dist_fixed(150);
	p->out_final = gen_dist_fixed(400);
	p->text_call = gen_dist_fixed(20);
	p->text_final = gen_dist_fixed(300);
	p->api_ms = gen_dist_fixed(3000);
	p->think_ms = gen_dist_fixed(20000);
	p->decode_tps = 60;
	p->summary_tokens = gen_dist_fixed(2500);
	p->sub_calls = gen_dist_fixed(5);
	p->map_tokens = gen_dist_fixed(1024);
	p->chat_files = gen_dist_fixed(1);
	p->notes_tokens = gen_dist_fixed(0);
	p->test_fail_first = GEN_PROB_ONE * 4 / 5;
	p->test_fail_again = GEN_PROB_ONE / 4;
	const char *mode = NULL;
	if (get_str(&l, root, "name", 1, &p->name) < 0 || get_str(&l, root, "description", 0, &p->description) < 0 ||
	    get_str(&l, root, "model", 0, &p->model) < 0 || get_str(&l, root, "home", 0, &p->home) < 0 ||
	    config_get_str(doc, root, "mode", 0, &mode, err) < 0)
		goto out;
	if (mode && !strcmp(mode, "chat"))
		p->chat = true;
	else if (mode && strcmp(mode, "tools")) {
		config_error(doc, cJSON_GetObjectItemCaseSensitive(root, "mode"), "mode", err,
			     "unknown mode '%s' (tools, chat)", mode);
		goto out;
	}
	const cJSON *cid = cJSON_GetObjectItemCaseSensitive(root, "call_id");
	if (cid) {
		static const char *const ck[] = {"prefix", "length", NULL};
		int64_t len = 24;
		if (check_keys(&l, cid, "call_id", ck) < 0 || get_str(&l, cid, "prefix", 0, &p->call_id_prefix) < 0 ||
		    get_int(&l, cid, "length", 0, 4, 64, &len) < 0)
			goto out;
		p->call_id_len = (int)len;
	}
	if (!p->call_id_prefix && !(p->call_id_prefix = strdup("call_")))
		goto oom;
	const cJSON *langs = cJSON_GetObjectItemCaseSensitive(root, "languages");
	if (langs) {
		if (!cJSON_IsObject(langs)) {
			config_error(doc, langs, "languages", err, "expected a mapping of language: weight");
			goto out;
		}
		for (const cJSON *m = langs->child; m; m = m->next) {
			enum gen_lang lg;
			if (gen_lang_parse(m->string, &lg) < 0) {
				config_error(doc, m, m->string, err, "unknown language (c, python, typescript, go, rust)");
				goto out;
			}
			if (get_int(&l, langs, m->string, 1, 0, 1000000, &p->lang_weight[lg]) < 0)
				goto out;
		}
	} else {
		for (int i = 0; i < GEN_LANG_N; i++)
			p->lang_weight[i] = 1;
	}
	int64_t wsum = 0;
	for (int i = 0; i < GEN_LANG_N; i++)
		wsum += p->lang_weight[i];
	if (wsum <= 0) {
		config_error(doc, langs, "languages", err, "every weight is 0");
		goto out;
	}
	if (load_tools(&l, p, cJSON_GetObjectItemCaseSensitive(root, "tools")) < 0)
		goto out;
	if (p->chat && cJSON_GetArraySize(p->tools) > 0) {
		config_error(doc, cJSON_GetObjectItemCaseSensitive(root, "tools"), "tools", err,
			     "mode chat sends no tools; remove them or use mode tools");
		goto out;
	}
	const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(root, "prefix");
	if (prefix && load_prefix(&l, p, prefix) < 0)
		goto out;
	if (!p->task_template && !(p->task_template = strdup("{task}")))
		goto oom;
	const cJSON *roles = cJSON_GetObjectItemCaseSensitive(root, "roles");
	if (!roles) {
		config_error(doc, root, "roles", err, "missing required field");
		goto out;
	}
	if (!cJSON_IsObject(roles)) {
		config_error(doc, roles, "roles", err, "expected a mapping of role: definition");
		goto out;
	}
	for (const cJSON *m = roles->child; m; m = m->next) {
		int r = -1;
		for (int i = 0; i < GEN_NROLES; i++)
			if (!strcmp(role_names[i], m->string))
				r = i;
		if (r < 0) {
			config_error(doc, m, m->string, err,
				     "unknown role (read, search, list, test, build, shell, edit, write, todo, task, web)");
			goto out;
		}
		if (load_role(&l, p, (enum gen_role)r, m) < 0)
			goto out;
	}
	if (!p->roles[GEN_ROLE_READ].present) {
		config_error(doc, roles, "roles", err, "a profile needs at least the role 'read'");
		goto out;
	}
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "session");
	if (s) {
		static const char *const sk[] = {"growth_per_turn", "calls_per_task", "task_tokens", "interjection",
						 "interjection_tokens", "reread_after_edit", "test_fail_first",
						 "test_fail_again", "paste", "basis", NULL};
		if (check_keys(&l, s, "session", sk) < 0 ||
		    get_int(&l, s, "growth_per_turn", 0, 16, 10000000, &p->growth_per_turn) < 0 ||
		    get_dist(&l, s, "calls_per_task", 0, 1, 1, &p->calls_per_task) < 0 ||
		    get_dist(&l, s, "task_tokens", 0, 1, 4, &p->task_tokens) < 0 ||
		    get_dist(&l, s, "interjection_tokens", 0, 1, 4, &p->interject_tokens) < 0 ||
		    gen_prob_parse(doc, s, "interjection", &p->interject, err) < 0 ||
		    gen_prob_parse(doc, s, "reread_after_edit", &p->reread, err) < 0 ||
		    gen_prob_parse(doc, s, "test_fail_first", &p->test_fail_first, err) < 0 ||
		    gen_prob_parse(doc, s, "test_fail_again", &p->test_fail_again, err) < 0 ||
		    gen_prob_parse(doc, s, "paste", &p->paste, err) < 0)
			goto out;
	}
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "output");
	if (o) {
		bool reasoning = false;
		static const char *const ok[] = {"call_tokens", "final_tokens", "call_text_tokens", "final_text_tokens",
						 "reasoning", "basis", NULL};
		if (check_keys(&l, o, "output", ok) < 0 || get_dist(&l, o, "call_tokens", 0, 1, 1, &p->out_call) < 0 ||
		    get_dist(&l, o, "final_tokens", 0, 1, 1, &p->out_final) < 0 ||
		    get_dist(&l, o, "call_text_tokens", 0, 1, 0, &p->text_call) < 0 ||
		    get_dist(&l, o, "final_text_tokens", 0, 1, 1, &p->text_final) < 0 ||
		    config_get_bool(doc, o, "reasoning", 0, &reasoning, err) < 0)
			goto out;
		p->reasoning = reasoning;
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "timing");
	if (t) {
		static const char *const tk[] = {"api", "decode_tps", "user_think", "basis", NULL};
		if (check_keys(&l, t, "timing", tk) < 0 || get_dist(&l, t, "api", 0, 1000, 0, &p->api_ms) < 0 ||
		    get_dist(&l, t, "user_think", 0, 1000, 0, &p->think_ms) < 0 ||
		    get_int(&l, t, "decode_tps", 0, 1, 100000, &p->decode_tps) < 0)
			goto out;
	}
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "compaction");
	if (c) {
		static const char *const ckk[] = {"prompt", "continuation", "summary_tokens", "basis", NULL};
		if (check_keys(&l, c, "compaction", ckk) < 0 || get_str(&l, c, "prompt", 0, &p->compact_prompt) < 0 ||
		    get_str(&l, c, "continuation", 0, &p->compact_continue) < 0 ||
		    get_dist(&l, c, "summary_tokens", 0, 1, 16, &p->summary_tokens) < 0)
			goto out;
	}
	if (!p->compact_prompt &&
	    !(p->compact_prompt = strdup("Your task is to create a detailed summary of the conversation so far, so that "
					 "the work can continue in a fresh context without losing anything important.")))
		goto oom;
	if (!p->compact_continue &&
	    !(p->compact_continue = strdup("This session continues an earlier conversation that ran out of context. "
					   "Summary of it:\n\n{summary}\n\nContinue with the last task.")))
		goto oom;
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(root, "subagent");
	if (sub) {
		static const char *const sk2[] = {"system", "tools", "calls", "basis", NULL};
		if (check_keys(&l, sub, "subagent", sk2) < 0 || get_str(&l, sub, "system", 0, &p->sub_system) < 0 ||
		    get_strs(&l, sub, "tools", &p->sub_tools, &p->n_sub_tools) < 0 ||
		    get_dist(&l, sub, "calls", 0, 1, 1, &p->sub_calls) < 0)
			goto out;
		for (int i = 0; i < p->n_sub_tools; i++)
			if (!has_tool(p, p->sub_tools[i])) {
				config_error(doc, sub, "tools", err, "subagent tool '%s' is not in tools", p->sub_tools[i]);
				goto out;
			}
	}
	if (p->roles[GEN_ROLE_TASK].present && p->roles[GEN_ROLE_TASK].weight > 0 && !p->sub_system) {
		config_error(doc, roles, "task", err, "role 'task' needs a subagent section (system, tools)");
		goto out;
	}
	const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "chat");
	if (ch) {
		static const char *const chk[] = {"map_intro", "map_ack", "map_tokens", "files_intro", "files_ack",
						  "added", "followup", "files", "basis", NULL};
		if (check_keys(&l, ch, "chat", chk) < 0 || get_str(&l, ch, "map_intro", 0, &p->map_intro) < 0 ||
		    get_str(&l, ch, "map_ack", 0, &p->map_ack) < 0 || get_str(&l, ch, "files_intro", 0, &p->files_intro) < 0 ||
		    get_str(&l, ch, "files_ack", 0, &p->files_ack) < 0 || get_str(&l, ch, "added", 0, &p->added) < 0 ||
		    get_str(&l, ch, "followup", 0, &p->followup) < 0 ||
		    get_dist(&l, ch, "map_tokens", 0, 1, 0, &p->map_tokens) < 0 ||
		    get_dist(&l, ch, "files", 0, 1, 0, &p->chat_files) < 0)
			goto out;
	}
	if (p->chat && (!p->files_intro || !p->files_ack || !p->added)) {
		config_error(doc, root, "chat", err, "mode chat needs chat.files_intro, chat.files_ack and chat.added");
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	gen_profile_free(p);
	config_free(doc);
	return rc;
}
