/* Unit tests: reqdiff (src/reqdiff.c). The central check (replay()): the
 * turns reqdiff produces, stepped through convo (the replay engine's own
 * history), materialise exactly the messages of every request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convo.h"
#include "reqdiff.h"

struct step {
	enum reqdiff_api api;
	const char *body;     /* request */
	const char *response; /* the request log's response object */
	/* expectations */
	int new_session;
	long keep;
	size_t n_append;
	long orphans;
};

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void assert_msgs_equal(const struct tr_message *got, size_t ng, const struct tr_message *want, size_t nw, int step)
{
	if (ng != nw)
		fail_msg("step %d: %zu messages materialised, the request had %zu", step, ng, nw);
	for (size_t i = 0; i < ng; i++) {
		const struct tr_message *a = &got[i], *b = &want[i];
		if (a->role != b->role || !str_eq(a->content ? a->content : "", b->content ? b->content : "") ||
		    a->n_calls != b->n_calls || !str_eq(a->tool_call_id, b->tool_call_id))
			fail_msg("step %d: message %zu differs: %s '%s' vs %s '%s'", step, i, tr_role_name(a->role),
				 a->content ? a->content : "", tr_role_name(b->role), b->content ? b->content : "");
		for (size_t k = 0; k < a->n_calls; k++)
			if (!str_eq(a->calls[k].id, b->calls[k].id) || !str_eq(a->calls[k].arguments, b->calls[k].arguments))
				fail_msg("step %d: message %zu call %zu differs: %s vs %s", step, i, k, a->calls[k].arguments,
					 b->calls[k].arguments);
	}
}

/* Runs the steps through reqdiff, builds turns, steps them through convo and
 * checks each materialised history against the request. */
static void replay(const struct step *steps, size_t n)
{
	struct reqdiff *d;
	struct ar_err e;
	assert_int_equal(reqdiff_new(&d, &e), 0);
	struct convo cv;
	convo_init(&cv, false);
	struct tr_session ses = {0};
	int64_t turn_i = 0;
	int sessions = 0;
	for (size_t s = 0; s < n; s++) {
		cJSON *body = cJSON_Parse(steps[s].body);
		assert_non_null(body);
		struct reqdiff_req req;
		if (reqdiff_parse(steps[s].api, body, &req, &e) < 0)
			fail_msg("step %zu: %s", s, e.msg);
		struct reqdiff_turn t;
		assert_int_equal(reqdiff_next(d, &req, &t, &e), 0);
		assert_false(t.empty);
		if ((int)t.new_session != steps[s].new_session)
			fail_msg("step %zu: new_session %d", s, t.new_session);
		if (t.keep != steps[s].keep)
			fail_msg("step %zu: keep %lld, want %ld", s, (long long)t.keep, steps[s].keep);
		if (t.n_append != steps[s].n_append)
			fail_msg("step %zu: %zu appended, want %zu", s, t.n_append, steps[s].n_append);
		assert_int_equal(t.orphans, steps[s].orphans);
		if (t.new_session) {
			free(ses.system);
			ses.system = req.system ? strdup(req.system) : NULL;
			convo_free(&cv);
			convo_init(&cv, false);
			convo_reset(&cv, &ses);
			turn_i = 0;
			sessions++;
		}
		struct tr_response *resp = NULL;
		cJSON *rec = NULL;
		cJSON *rj = cJSON_Parse(steps[s].response);
		assert_non_null(rj);
		assert_int_equal(reqdiff_log_response(steps[s].api, rj, 10, 20, req.model, &resp, &rec, &e), 0);
		struct tr_turn turn = {.i = turn_i++, .keep = t.keep, .append = t.append, .n_append = t.n_append,
				       .response = resp};
		assert_int_equal(convo_step(&cv, &turn, &e), 0);
		assert_msgs_equal(cv.msgs, cv.n, req.msgs, req.n_msgs, (int)s);
		assert_int_equal(reqdiff_answer(d, resp, &e), 0);
		tr_response_free(resp);
		cJSON_Delete(rec);
		cJSON_Delete(rj);
		cJSON_Delete(body);
		reqdiff_turn_clear(&t);
		reqdiff_req_clear(&req);
	}
	free(ses.system);
	convo_free(&cv);
	reqdiff_free(d);
}

#define OA REQDIFF_OPENAI_CHAT
#define AN REQDIFF_ANTHROPIC_MESSAGES
#define SYS "{\"role\":\"system\",\"content\":\"You are a coding agent.\"}"
#define TOOLS ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"bash\",\"parameters\":{\"type\":\"object\"}}}]"
#define U0 "{\"role\":\"user\",\"content\":\"count lines of main.c\"}"
#define A0 "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"bash\",\"arguments\":\"{\\\"cmd\\\":\\\"wc -l main.c\\\"}\"}}]}"
#define T0 "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"120 main.c\"}"
#define A1 "{\"role\":\"assistant\",\"content\":\"120 lines.\"}"
#define U1 "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"and\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}},{\"type\":\"text\",\"text\":\"util.c?\"}]}"
#define R_CALL "{\"status\":200,\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"bash\",\"arguments\":\"{\\\"cmd\\\":\\\"wc -l main.c\\\"}\"}}],\"reasoning_chars\":null,\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":32}}}"
#define R_TEXT(s) "{\"status\":200,\"content\":\"" s "\",\"tool_calls\":null,\"reasoning_chars\":40,\"usage\":{\"prompt_tokens\":70,\"completion_tokens\":5}}"
#define R_FAIL "{\"status\":502,\"content\":null,\"tool_calls\":null,\"reasoning_chars\":null,\"usage\":null}"

static void test_openai_growing(void **state)
{
	const struct step steps[] = {
		{OA, "{\"model\":\"m\",\"messages\":[" SYS "," U0 "]" TOOLS "}", R_CALL, 1, -1, 1, 0},
		{OA, "{\"model\":\"m\",\"messages\":[" SYS "," U0 "," A0 "," T0 "]" TOOLS "}", R_TEXT("120 lines."), 0, -1, 1, 0},
		{OA, "{\"model\":\"m\",\"messages\":[" SYS "," U0 "," A0 "," T0 "," A1 "," U1 "]" TOOLS "}", R_FAIL, 0, -1, 1, 0},
		/* retry of a failed request: nothing new */
		{OA, "{\"model\":\"m\",\"messages\":[" SYS "," U0 "," A0 "," T0 "," A1 "," U1 "]" TOOLS "}", R_TEXT("util.c: 80"), 0, -1, 0, 0},
	};
	replay(steps, sizeof steps / sizeof steps[0]);
}

static void test_openai_rewrites(void **state)
{
	const struct step steps[] = {
		{OA, "{\"messages\":[" SYS "," U0 "]" TOOLS "}", R_CALL, 1, -1, 1, 0},
		{OA, "{\"messages\":[" SYS "," U0 "," A0 "," T0 "]" TOOLS "}", R_TEXT("120 lines."), 0, -1, 1, 0},
		/* the agent edited the assistant's answer: keep 3, append the new version */
		{OA, "{\"messages\":[" SYS "," U0 "," A0 "," T0 ",{\"role\":\"assistant\",\"content\":\"120\"}," U1 "]" TOOLS "}",
		 R_TEXT("ok"), 0, 3, 2, 0},
		/* compaction: a summary replaces everything */
		{OA, "{\"messages\":[" SYS ",{\"role\":\"user\",\"content\":\"Summary: main.c has 120 lines.\"}]" TOOLS "}",
		 R_TEXT("ok"), 0, 0, 1, 0},
		/* a different system prompt: a new session */
		{OA, "{\"messages\":[{\"role\":\"system\",\"content\":\"Write a title.\"}," U0 "]" TOOLS "}", R_TEXT("Lines"), 1, -1, 1, 0},
		/* back to the main system prompt, other tools: another session */
		{OA, "{\"messages\":[" SYS "," U0 "]}", R_TEXT("ok"), 1, -1, 1, 0},
		/* no system prompt at all: a session without one */
		{OA, "{\"messages\":[" U0 "]}", R_TEXT("ok"), 1, -1, 1, 0},
	};
	replay(steps, sizeof steps / sizeof steps[0]);
}

static void test_orphan_tool_result(void **state)
{
	const struct step steps[] = {
		{OA, "{\"messages\":[" U0 "," T0 "]}", R_TEXT("ok"), 1, -1, 2, 1},
	};
	/* the tool result for the never-issued c1 becomes a user message, so
	 * the history is no longer the request's: check the shape directly */
	struct reqdiff *d;
	struct ar_err e;
	assert_int_equal(reqdiff_new(&d, &e), 0);
	cJSON *body = cJSON_Parse(steps[0].body);
	struct reqdiff_req req;
	assert_int_equal(reqdiff_parse(OA, body, &req, &e), 0);
	struct reqdiff_turn t;
	assert_int_equal(reqdiff_next(d, &req, &t, &e), 0);
	assert_int_equal(t.orphans, 1);
	assert_int_equal(t.append[1].role, TR_USER);
	assert_null(t.append[1].tool_call_id);
	assert_string_equal(t.append[1].content, "120 main.c");
	reqdiff_turn_clear(&t);
	reqdiff_req_clear(&req);
	cJSON_Delete(body);
	reqdiff_free(d);
}

#define ASYS "\"system\":[{\"type\":\"text\",\"text\":\"You are Claude Code.\",\"cache_control\":{\"type\":\"ephemeral\"}}]"
#define ATOOLS ",\"tools\":[{\"name\":\"Bash\",\"description\":\"run\",\"input_schema\":{\"type\":\"object\"}},{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]"
#define AU0 "{\"role\":\"user\",\"content\":\"list files\"}"
#define AA0 "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"x\"},{\"type\":\"text\",\"text\":\"Listing.\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Bash\",\"input\":{\"command\": \"ls\", \"n\": 1}}]}"
#define AT0 "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":[{\"type\":\"text\",\"text\":\"a.c\\nb.c\"}]},{\"type\":\"text\",\"text\":\"also count them\"}]}"
#define AR_CALL "{\"status\":200,\"content\":\"Listing.\",\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"Bash\",\"arguments\":\"{\\\"command\\\":\\\"ls\\\",\\\"n\\\":1}\"}}],\"reasoning_chars\":3,\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":5,\"output_tokens\":30}}"

static void test_anthropic(void **state)
{
	const struct step steps[] = {
		{AN, "{\"model\":\"claude\"," ASYS ",\"messages\":[" AU0 "]" ATOOLS "}", AR_CALL, 1, -1, 1, 0},
		/* the echo of the tool_use (re-spaced input) equals the recorded call,
		 * the tool_result becomes a tool message, the text a user message */
		{AN, "{\"model\":\"claude\"," ASYS ",\"messages\":[" AU0 "," AA0 "," AT0 "]" ATOOLS "}", R_TEXT("2 files"), 0, -1, 2, 0},
	};
	replay(steps, sizeof steps / sizeof steps[0]);

	cJSON *body = cJSON_Parse("{\"model\":\"claude\"," ASYS ",\"messages\":[" AU0 "," AA0 "," AT0 "]" ATOOLS "}");
	struct reqdiff_req req;
	struct ar_err e;
	assert_int_equal(reqdiff_parse(AN, body, &req, &e), 0);
	assert_string_equal(req.system, "You are Claude Code.");
	assert_int_equal(req.n_msgs, 4);
	assert_int_equal(req.msgs[1].role, TR_ASSISTANT);
	assert_string_equal(req.msgs[1].content, "Listing.");
	assert_string_equal(req.msgs[1].calls[0].arguments, "{\"command\":\"ls\",\"n\":1}");
	assert_int_equal(req.msgs[2].role, TR_TOOL);
	assert_string_equal(req.msgs[2].tool_call_id, "toolu_1");
	assert_string_equal(req.msgs[2].content, "a.c\nb.c");
	assert_int_equal(req.msgs[3].role, TR_USER);
	assert_string_equal(req.msgs[3].content, "also count them");
	assert_int_equal(req.dropped, 2); /* thinking block, web_search server tool */
	assert_int_equal(cJSON_GetArraySize(req.tools), 1);
	char *tools = cJSON_PrintUnformatted(req.tools);
	assert_string_equal(tools, "[{\"type\":\"function\",\"function\":{\"name\":\"Bash\",\"description\":\"run\",\"parameters\":{\"type\":\"object\"}}}]");
	free(tools);
	reqdiff_req_clear(&req);
	cJSON_Delete(body);
}

static void test_log_response(void **state)
{
	struct ar_err e;
	struct tr_response *r;
	cJSON *rec;
	cJSON *j = cJSON_Parse(AR_CALL);
	assert_int_equal(reqdiff_log_response(AN, j, 12.5, 300, "claude", &r, &rec, &e), 0);
	char *s = cJSON_PrintUnformatted(rec);
	assert_string_equal(s, "{\"prompt_tokens\":115,\"cached_tokens\":100,\"output_tokens\":30,\"ttft_ms\":12.5,"
			       "\"e2e_ms\":300,\"model\":\"claude\",\"cache_creation_tokens\":5}");
	free(s);
	assert_int_equal(r->output_tokens, 30);
	assert_int_equal(r->reasoning_tokens, 1);
	assert_int_equal(r->n_calls, 1);
	assert_string_equal(r->finish, "tool_calls");
	tr_response_free(r);
	cJSON_Delete(rec);
	cJSON_Delete(j);

	j = cJSON_Parse(R_CALL);
	assert_int_equal(reqdiff_log_response(OA, j, -1, -1, NULL, &r, &rec, &e), 0);
	s = cJSON_PrintUnformatted(rec);
	assert_string_equal(s, "{\"prompt_tokens\":50,\"cached_tokens\":32,\"output_tokens\":12}");
	free(s);
	assert_null(r->content);
	tr_response_free(r);
	cJSON_Delete(rec);
	cJSON_Delete(j);

	j = cJSON_Parse(R_FAIL);
	assert_int_equal(reqdiff_log_response(OA, j, -1, 4, NULL, &r, &rec, &e), 0);
	assert_null(r);
	s = cJSON_PrintUnformatted(rec);
	assert_string_equal(s, "{\"e2e_ms\":4,\"status\":502}");
	free(s);
	cJSON_Delete(rec);
	cJSON_Delete(j);

	j = cJSON_Parse("{\"content\":\"x\"}");
	assert_int_equal(reqdiff_log_response(OA, j, -1, -1, NULL, &r, &rec, &e), -1);
	assert_non_null(strstr(e.msg, "response.status"));
	cJSON_Delete(j);
}

static void test_bad_requests(void **state)
{
	static const char *const bad[] = {"[]", "{\"messages\":{}}", "{\"messages\":[1]}", "{\"messages\":[{\"content\":\"x\"}]}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *j = cJSON_Parse(bad[i]);
		struct reqdiff_req req;
		struct ar_err e;
		for (int api = 0; api < 2; api++) {
			if (reqdiff_parse((enum reqdiff_api)api, j, &req, &e) != -1)
				fail_msg("'%s' parsed as api %d", bad[i], api);
			assert_int_equal(e.code, AR_EFORMAT);
		}
		cJSON_Delete(j);
	}
	/* an empty request makes an empty turn */
	struct reqdiff *d;
	struct ar_err e;
	assert_int_equal(reqdiff_new(&d, &e), 0);
	cJSON *j = cJSON_Parse("{\"messages\":[]}");
	struct reqdiff_req req;
	assert_int_equal(reqdiff_parse(OA, j, &req, &e), 0);
	struct reqdiff_turn t;
	assert_int_equal(reqdiff_next(d, &req, &t, &e), 0);
	assert_true(t.empty);
	reqdiff_turn_clear(&t);
	reqdiff_req_clear(&req);
	cJSON_Delete(j);
	reqdiff_free(d);
	reqdiff_free(NULL);

	enum reqdiff_api a;
	assert_int_equal(reqdiff_api_parse("anthropic-messages", &a), 0);
	assert_int_equal(a, AN);
	assert_string_equal(reqdiff_api_name(OA), "openai-chat");
	assert_int_equal(reqdiff_api_parse("nope", &a), -1);
}

/* ---- the router ----------------------------------------------------------- */

struct rstep {
	const char *body;     /* OpenAI chat request */
	const char *response; /* the request log's response object */
	long session, parent, spawned_at_turn, keep;
};

#define RMAX 8

/* Routes the steps; per session, steps the turns through convo and checks
 * each materialised history against the request (what the trace replays). */
static void route(const struct rstep *steps, size_t n, size_t max_open)
{
	struct reqdiff_router *r;
	struct ar_err e;
	assert_int_equal(reqdiff_router_new(&r, max_open, &e), 0);
	struct convo cv[RMAX];
	struct tr_session ses[RMAX];
	memset(ses, 0, sizeof ses);
	for (size_t s = 0; s < n; s++) {
		cJSON *body = cJSON_Parse(steps[s].body);
		assert_non_null(body);
		struct reqdiff_req req;
		if (reqdiff_parse(OA, body, &req, &e) < 0)
			fail_msg("step %zu: %s", s, e.msg);
		struct reqdiff_route rt;
		assert_int_equal(reqdiff_router_next(r, &req, &rt, &e), 0);
		if (rt.session != steps[s].session || rt.parent != steps[s].parent ||
		    rt.spawned_at_turn != steps[s].spawned_at_turn || rt.diff.keep != steps[s].keep)
			fail_msg("step %zu: session %lld parent %lld spawned_at_turn %lld keep %lld, want %ld %ld %ld %ld", s,
				 (long long)rt.session, (long long)rt.parent, (long long)rt.spawned_at_turn,
				 (long long)rt.diff.keep, steps[s].session, steps[s].parent, steps[s].spawned_at_turn,
				 steps[s].keep);
		assert_true(rt.session < RMAX);
		struct convo *c = &cv[rt.session];
		if (rt.diff.new_session) {
			assert_int_equal(rt.session, reqdiff_router_sessions(r) - 1);
			assert_int_equal(rt.turn, 0);
			ses[rt.session].system = req.system ? strdup(req.system) : NULL;
			convo_init(c, false);
			convo_reset(c, &ses[rt.session]);
		}
		struct tr_response *resp = NULL;
		cJSON *rec = NULL;
		cJSON *rj = cJSON_Parse(steps[s].response);
		assert_non_null(rj);
		assert_int_equal(reqdiff_log_response(OA, rj, 10, 20, req.model, &resp, &rec, &e), 0);
		struct tr_turn turn = {.i = rt.turn, .keep = rt.diff.keep, .append = rt.diff.append,
				       .n_append = rt.diff.n_append, .response = resp};
		assert_int_equal(convo_step(c, &turn, &e), 0);
		assert_msgs_equal(c->msgs, c->n, req.msgs, req.n_msgs, (int)s);
		assert_int_equal(reqdiff_router_answer(r, rt.session, resp, &e), 0);
		tr_response_free(resp);
		cJSON_Delete(rec);
		cJSON_Delete(rj);
		cJSON_Delete(body);
		reqdiff_route_clear(&rt);
		reqdiff_req_clear(&req);
	}
	for (int64_t i = 0; i < reqdiff_router_sessions(r); i++) {
		free(ses[i].system);
		convo_free(&cv[i]);
	}
	reqdiff_router_free(r);
}

#define MSYS "{\"role\":\"system\",\"content\":\"You are the main agent.\"}"
#define MTOOLS ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"Task\",\"parameters\":{\"type\":\"object\"}}}," \
	       "{\"type\":\"function\",\"function\":{\"name\":\"bash\",\"parameters\":{\"type\":\"object\"}}}]"
#define SSYS "{\"role\":\"system\",\"content\":\"You are a subagent.\"}"
#define MU0 "{\"role\":\"user\",\"content\":\"review ring.c and find callers\"}"
#define CALLS2 "[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"Task\",\"arguments\":\"{\\\"p\\\":\\\"review\\\"}\"}}," \
	       "{\"id\":\"t2\",\"type\":\"function\",\"function\":{\"name\":\"Task\",\"arguments\":\"{\\\"p\\\":\\\"callers\\\"}\"}}]"
#define MA0 "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":" CALLS2 "}"
#define R_TASKS "{\"status\":200,\"content\":null,\"tool_calls\":" CALLS2 ",\"reasoning_chars\":null,\"usage\":null}"
#define MT0 "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"push does not wrap\"},{\"role\":\"tool\",\"tool_call_id\":\"t2\",\"content\":\"3 callers\"}"
#define AU "{\"role\":\"user\",\"content\":\"review ring.c\"}"
#define BU "{\"role\":\"user\",\"content\":\"find callers of ring_push\"}"

/* A main conversation spawns two subagents (other system prompt) that run
 * interleaved; then it goes on with their results. */
static void test_router_subagents(void **state)
{
	const struct rstep steps[] = {
		{"{\"messages\":[" MSYS "," MU0 "]" MTOOLS "}", R_TASKS, 0, -1, -1, -1},
		{"{\"messages\":[" SSYS "," AU "]" TOOLS "}", R_CALL, 1, 0, 0, -1},
		{"{\"messages\":[" SSYS "," BU "]" TOOLS "}", R_CALL, 2, 0, 0, -1},
		{"{\"messages\":[" SSYS "," BU "," A0 "," T0 "]" TOOLS "}", R_TEXT("3 callers"), 2, -1, -1, -1},
		{"{\"messages\":[" SSYS "," AU "," A0 "," T0 "]" TOOLS "}", R_TEXT("push does not wrap"), 1, -1, -1, -1},
		{"{\"messages\":[" MSYS "," MU0 "," MA0 "," MT0 "]" MTOOLS "}", R_TEXT("found two things"), 0, -1, -1, -1},
		/* the user asks for more: main's history grows, no new session */
		{"{\"messages\":[" MSYS "," MU0 "," MA0 "," MT0 ",{\"role\":\"assistant\",\"content\":\"found two things\"}," U0 "]" MTOOLS "}",
		 R_TEXT("120"), 0, -1, -1, -1},
	};
	route(steps, sizeof steps / sizeof steps[0], 0);
}

/* Subagents with the parent's own system prompt and tools (Codex
 * spawn_agent): they share nothing with its history, so they are children,
 * not a keep:0 of the parent. The longest history wins over a shorter one. */
static void test_router_same_prompt(void **state)
{
	const struct rstep steps[] = {
		{"{\"messages\":[" MSYS "," MU0 "]" MTOOLS "}", R_TASKS, 0, -1, -1, -1},
		{"{\"messages\":[" MSYS "," AU "]" MTOOLS "}", R_CALL, 1, 0, 0, -1},
		{"{\"messages\":[" MSYS "," BU "]" MTOOLS "}", R_TEXT("3 callers"), 2, 0, 0, -1},
		{"{\"messages\":[" MSYS "," AU "," A0 "," T0 "]" MTOOLS "}", R_TEXT("no wrap"), 1, -1, -1, -1},
		{"{\"messages\":[" MSYS "," MU0 "," MA0 "," MT0 "]" MTOOLS "}", R_TEXT("done"), 0, -1, -1, -1},
		/* compaction of main (answered, awaits nothing): keep 0 on the most recent */
		{"{\"messages\":[" MSYS ",{\"role\":\"user\",\"content\":\"Summary: two findings.\"}]" MTOOLS "}", R_TEXT("ok"), 0, -1, -1, 0},
		/* main's history edited after its first message: keep 1 */
		{"{\"messages\":[" MSYS ",{\"role\":\"user\",\"content\":\"Summary: two findings.\"},{\"role\":\"assistant\",\"content\":\"k\"},"
		 U0 "]" MTOOLS "}", R_TEXT("ok"), 0, -1, -1, 1},
	};
	route(steps, sizeof steps / sizeof steps[0], 0);
}

/* A plain tool call (not a subagent tool) in flight: a request of another
 * kind that starts meanwhile is a child; one that starts when nothing
 * awaits a result is a new top-level session. Closing the least recently
 * used conversation when the router is full. */
static void test_router_waiting_and_full(void **state)
{
	const struct rstep steps[] = {
		{"{\"messages\":[" SYS "," U0 "]" TOOLS "}", R_CALL, 0, -1, -1, -1},
		{"{\"messages\":[{\"role\":\"system\",\"content\":\"Summarise the output.\"}," U0 "]}", R_TEXT("s"), 1, 0, 0, -1},
		{"{\"messages\":[" SYS "," U0 "," A0 "," T0 "]" TOOLS "}", R_TEXT("120 lines."), 0, -1, -1, -1},
		{"{\"messages\":[{\"role\":\"system\",\"content\":\"Write a title.\"}," U0 "]}", R_TEXT("t"), 2, -1, -1, -1},
		/* max_open 2: session 2 closed session 1 (least recently used) */
		{"{\"messages\":[{\"role\":\"system\",\"content\":\"Summarise the output.\"}," U0 ",{\"role\":\"assistant\",\"content\":\"s\"}," U1 "]}",
		 R_TEXT("s2"), 3, -1, -1, -1},
	};
	route(steps, sizeof steps / sizeof steps[0], 2);

	struct reqdiff_router *r;
	struct ar_err e;
	assert_int_equal(reqdiff_router_new(&r, 0, &e), 0);
	cJSON *j = cJSON_Parse("{\"messages\":[]}");
	struct reqdiff_req req;
	assert_int_equal(reqdiff_parse(OA, j, &req, &e), 0);
	struct reqdiff_route rt;
	assert_int_equal(reqdiff_router_next(r, &req, &rt, &e), 0);
	assert_true(rt.diff.empty);
	assert_int_equal(rt.session, -1);
	assert_int_equal(reqdiff_router_sessions(r), 0);
	assert_int_equal(reqdiff_router_answer(r, 5, NULL, &e), 0); /* unknown: ignored */
	reqdiff_route_clear(&rt);
	reqdiff_req_clear(&req);
	cJSON_Delete(j);
	reqdiff_router_free(r);
	reqdiff_router_free(NULL);
	assert_true(reqdiff_is_subagent_tool("Task"));
	assert_true(reqdiff_is_subagent_tool("spawn_agent"));
	assert_false(reqdiff_is_subagent_tool("bash"));
	assert_false(reqdiff_is_subagent_tool(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openai_growing),
		cmocka_unit_test(test_openai_rewrites),
		cmocka_unit_test(test_orphan_tool_result),
		cmocka_unit_test(test_anthropic),
		cmocka_unit_test(test_log_response),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_router_subagents),
		cmocka_unit_test(test_router_same_prompt),
		cmocka_unit_test(test_router_waiting_and_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
