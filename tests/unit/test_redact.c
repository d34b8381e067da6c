/* Unit tests: redact (src/redact.c) with the shipped rules (src/rules/redact.rules).
 *
 * Every fake secret here is assembled at run time from pieces (mk(), string
 * concatenation split inside the prefix) so secret scanners do not flag the
 * repository. One test per kind: the secret is gone, the output has the same
 * length, the kind's hit counter moved by exactly the expected amount. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "redact.h"

static struct redact *R;

static int setup(void **state)
{
	struct ar_err e;
	if (redact_new(&R, NULL, 0, 0, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	redact_free(R);
	return 0;
}

/* prefix + n characters drawn from cs, deterministic. Returns a static slot. */
static char *mk(const char *prefix, const char *cs, size_t n)
{
	static char slots[16][600];
	static int next;
	char *s = slots[next++ % 16];
	size_t pl = strlen(prefix), cl = strlen(cs);
	memcpy(s, prefix, pl);
	for (size_t i = 0; i < n; i++)
		s[pl + i] = cs[(i * 7 + 3) % cl];
	s[pl + n] = '\0';
	return s;
}

#define ALNUM "aB3dE5fG7hJ9kL1mN2pQ4rS6tV8wX0yZcUiOq"
#define B64 "aB3dE5fG7hJ9kL1mN2pQ4r/S6tV8wX0y+ZcUiOq"
#define HEX "0123456789abcdef"
#define URLSAFE "aB3dE5fG7hJ9kL1mN2pQ4r_S6tV8wX0y-ZcUiOq"

static int64_t hits_of(const char *kind)
{
	for (size_t i = 0; i < redact_n_kinds(R); i++)
		if (!strcmp(redact_kind(R, i), kind))
			return redact_hits(R, i);
	fail_msg("no kind '%s'", kind);
	return -1;
}

/* Redacts text; every secret must be gone, kind must have gained `want` hits,
 * total replacements == want (no other rule fired on the sample). */
static void expect(const char *kind, const char *text, int want, const char *const *secrets)
{
	int64_t before = hits_of(kind);
	struct buf out = BUF_INIT;
	struct ar_err e;
	int64_t n = redact_text(R, text, strlen(text), &out, &e);
	if (n < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(out.len, strlen(text));
	for (size_t i = 0; secrets[i]; i++)
		if (strstr(out.data, secrets[i]))
			fail_msg("kind %s: secret '%s' survived in '%s'", kind, secrets[i], out.data);
	assert_int_equal(hits_of(kind) - before, want);
	assert_int_equal(n, want);
	char ph[64];
	snprintf(ph, sizeof ph, "[REDACTED:%s]", kind);
	if (!strstr(out.data, ph) && !strstr(out.data, "******"))
		fail_msg("kind %s: no placeholder in '%s'", kind, out.data);
	buf_free(&out);
}

#define S(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_openai(void **state)
{
	char legacy[128], proj[256], t[600];
	snprintf(legacy, sizeof legacy, "%s", mk("s" "k-", ALNUM, 48));
	snprintf(proj, sizeof proj, "%s", mk("s" "k-proj-", URLSAFE, 156));
	snprintf(t, sizeof t, "export OPENAI_API_KEY=%s\nclient = OpenAI(api_key=\"%s\")\n", legacy, proj);
	expect("openai", t, 2, S(legacy + 3, proj + 8));
}

static void test_anthropic(void **state)
{
	char k[200], t[400];
	snprintf(k, sizeof k, "%sAA", mk("s" "k-ant-api03-", URLSAFE, 93));
	snprintf(t, sizeof t, "ANTHROPIC_API_KEY='%s' claude\n", k);
	expect("anthropic", t, 1, S(k + 14));
}

static void test_aws_access_key_id(void **state)
{
	char k[40], t[200];
	snprintf(k, sizeof k, "%s", mk("AK" "IA", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
	snprintf(t, sizeof t, "[default]\naws_access_key_id = %s\nregion = us-east-1\n", k);
	expect("aws_access_key_id", t, 1, S(k));
}

static void test_aws_secret_key(void **state)
{
	char k[64], t[300];
	snprintf(k, sizeof k, "%s", mk("", B64, 40));
	snprintf(t, sizeof t, "[default]\naws_secret_access_key = %s\n{\"SecretAccessKey\": \"%s\"}\n", k, k);
	expect("aws_secret_key", t, 2, S(k));
}

static void test_gcp_api_key(void **state)
{
	char k[64], t[300];
	snprintf(k, sizeof k, "%s", mk("AI" "za", URLSAFE, 35));
	snprintf(t, sizeof t, "fetch(`https://maps.googleapis.com/maps/api/geocode/json?address=x&key=%s`)", k);
	expect("gcp_api_key", t, 1, S(k + 4));
}

static void test_gcp_service_account(void **state)
{
	char id[64], body[300], t[800];
	snprintf(id, sizeof id, "%s", mk("", HEX, 40));
	snprintf(body, sizeof body, "%s", mk("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", B64, 200));
	snprintf(t, sizeof t,
		 "{\"type\": \"service_account\", \"project_id\": \"demo-123\", \"private_key_id\": \"%s\", "
		 "\"private_key\": \"-----BEGIN " "PRIVATE KEY-----\\n%s\\n-----END " "PRIVATE KEY-----\\n\", "
		 "\"client_email\": \"x@demo-123.iam.gserviceaccount.com\"}",
		 id, body);
	expect("gcp_service_account", t, 2, S(id, body));
}

static void test_pem_private_key(void **state)
{
	char body[400], t[800];
	snprintf(body, sizeof body, "%s", mk("MIIEowIBAAKCAQEA", B64, 300));
	snprintf(t, sizeof t, "$ cat id_rsa\n-----BEGIN RSA " "PRIVATE KEY-----\n%.64s\n%s\n-----END RSA " "PRIVATE KEY-----\n$ ",
		 body, body + 64);
	expect("pem_private_key", t, 1, S(body + 64, "MIIEowIBAAKCAQEA"));
	/* the markers stay, so a reader sees what was there */
	struct buf out = BUF_INIT;
	assert_true(redact_text(R, t, strlen(t), &out, NULL) == 1);
	assert_non_null(strstr(out.data, "PRIVATE KEY-----\n[REDACTED:pem_private_key]"));
	buf_free(&out);
}

static void test_github(void **state)
{
	char a[64], b[128], c[64], t[400];
	snprintf(a, sizeof a, "%s", mk("gh" "p_", ALNUM, 36));
	snprintf(b, sizeof b, "%s", mk("git" "hub_pat_", "aB3dE5fG7hJ9kL1mN2pQ4r_S6tV8wX0y", 82));
	snprintf(c, sizeof c, "%s", mk("gh" "s_", ALNUM, 36));
	snprintf(t, sizeof t, "git clone https://x-access-token:%s@github.com/o/r\nGH_TOKEN=%s gh pr list\n%s", c, b, a);
	/* the clone URL is also a url_password; the union counts once, as github */
	expect("github", t, 3, S(a + 4, b + 11, c + 4));
}

static void test_gitlab(void **state)
{
	char k[64], t[200];
	snprintf(k, sizeof k, "%s", mk("gl" "pat-", URLSAFE, 20));
	snprintf(t, sizeof t, "curl --header \"PRIVATE-TOKEN: %s\" https://gitlab.example.com/api/v4/projects", k);
	expect("gitlab", t, 1, S(k + 6));
}

static void test_slack_token(void **state)
{
	char k[128], t[300];
	snprintf(k, sizeof k, "xo" "xb-1234567890-1234567890123-%s", mk("", ALNUM, 24));
	snprintf(t, sizeof t, "SLACK_BOT=%s\n", k);
	expect("slack_token", t, 1, S(k + 5));
}

static void test_slack_webhook(void **state)
{
	char p[128], t[300];
	snprintf(p, sizeof p, "T0%s/B0%s/%s", mk("", "ABCDEFGHJK0123", 7), mk("", "ABCDEFGHJK0123", 9), mk("", ALNUM, 24));
	snprintf(t, sizeof t, "requests.post(\"https://hooks.sl" "ack.com/services/%s\", json=msg)", p);
	expect("slack_webhook", t, 1, S(p));
}

static void test_stripe(void **state)
{
	char a[64], b[64], t[300];
	snprintf(a, sizeof a, "%s", mk("sk" "_live_", ALNUM, 24));
	snprintf(b, sizeof b, "%s", mk("rk" "_live_", ALNUM, 99));
	snprintf(t, sizeof t, "stripe.api_key = \"%s\"\nrestricted: %s\n", a, b);
	expect("stripe", t, 2, S(a + 8, b + 8));
}

static void test_twilio(void **state)
{
	char a[64], b[64], t[300];
	snprintf(a, sizeof a, "%s", mk("S" "K", HEX, 32));
	snprintf(b, sizeof b, "%s", mk("", HEX, 32));
	snprintf(t, sizeof t, "TWILIO_API_KEY=%s\nTWILIO_AUTH_TOKEN=%s\n", a, b);
	expect("twilio", t, 2, S(a, b));
}

static void test_sendgrid(void **state)
{
	char k[128], t[300];
	snprintf(k, sizeof k, "S" "G.%s.%s", mk("", URLSAFE, 22), mk("", URLSAFE, 43));
	snprintf(t, sizeof t, "sg = SendGridAPIClient('%s')", k);
	expect("sendgrid", t, 1, S(k + 3));
}

static void test_npm(void **state)
{
	char a[64], t[300];
	snprintf(a, sizeof a, "%s", mk("np" "m_", ALNUM, 36));
	snprintf(t, sizeof t, "//registry.npmjs.org/:_authToken=%s\n", a);
	expect("npm", t, 1, S(a + 4));
	char b[64], u[300];
	snprintf(b, sizeof b, "%s", mk("", "0123456789abcdef-", 36));
	snprintf(u, sizeof u, "//npm.corp.example/:_authToken=%s\n", b);
	expect("npm", u, 1, S(b));
}

static void test_pypi(void **state)
{
	char k[200], t[300];
	snprintf(k, sizeof k, "%s", mk("py" "pi-AgEIcHlwaS5vcmc", URLSAFE, 150));
	snprintf(t, sizeof t, "[pypi]\nusername = __token__\npassword = %s\n", k);
	expect("pypi", t, 1, S(k + 20));
}

static void test_huggingface(void **state)
{
	char k[64], t[300];
	snprintf(k, sizeof k, "%s", mk("h" "f_", ALNUM, 34));
	snprintf(t, sizeof t, "huggingface-cli login --token %s\n", k);
	expect("huggingface", t, 1, S(k + 3));
}

static void test_google_oauth(void **state)
{
	char a[64], b[200], t[400];
	snprintf(a, sizeof a, "%s", mk("GOC" "SPX-", URLSAFE, 28));
	snprintf(b, sizeof b, "%s", mk("ya" "29.", URLSAFE, 120));
	snprintf(t, sizeof t, "client_secret: %s\nGET /drive/v3/files?access_tok=%s\n", a, b);
	expect("google_oauth", t, 2, S(a + 7, b + 5));
}

static void test_azure_storage(void **state)
{
	char k[128], sig[80], t[600];
	snprintf(k, sizeof k, "%s==", mk("", B64, 86));
	snprintf(sig, sizeof sig, "%s%%3D", mk("", "aB3dE5fG7hJ9kL1mN2pQ4r%2BS6tV8wX0y", 40));
	snprintf(t, sizeof t,
		 "DefaultEndpointsProtocol=https;AccountName=demo;AccountKey=%s;EndpointSuffix=core.windows.net\n"
		 "https://demo.blob.core.windows.net/c/b.txt?sv=2021-08-06&se=2030-01-01&sp=r&sig=%s\n",
		 k, sig);
	expect("azure_storage", t, 2, S(k, sig));
}

static void test_jwt(void **state)
{
	char k[300], t[400];
	snprintf(k, sizeof k, "ey" "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.ey" "JzdWIiOiIxMjM0NTY3ODkwIn0.%s", mk("", URLSAFE, 43));
	snprintf(t, sizeof t, "document.cookie = \"session=%s; path=/\"", k);
	expect("jwt", t, 1, S(k + 37, k + 60));
}

static void test_bearer_token(void **state)
{
	char k[64], t[300];
	snprintf(k, sizeof k, "%s", mk("", ALNUM, 40));
	snprintf(t, sizeof t, "curl -H 'Authorization: Bearer %s' https://api.example.com/v1/things", k);
	expect("bearer_token", t, 1, S(k));
}

static void test_basic_auth(void **state)
{
	char t[300];
	const char *cred = "dXNlcjpodW50ZXIyaHVudGVyMg==";
	snprintf(t, sizeof t, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n\r\n", cred);
	expect("basic_auth", t, 1, S(cred));
}

static void test_api_key_header(void **state)
{
	char a[64], b[64], t[300];
	snprintf(a, sizeof a, "%s", mk("", ALNUM, 32));
	snprintf(b, sizeof b, "%s", mk("", HEX, 32));
	snprintf(t, sizeof t, "x-api-key: %s\r\napi-key: %s\r\n", a, b);
	expect("api_key_header", t, 2, S(a, b));
}

static void test_url_password(void **state)
{
	char t[300];
	snprintf(t, sizeof t, "DATABASE_URL=postgres://app:%s@db.internal:5432/app\nredis://:%s@cache:6379/0\n",
		 "s3cr3t-Pa55w0rd!", "hunter2hunter2");
	expect("url_password", t, 2, S("s3cr3t-Pa55w0rd!", "hunter2hunter2"));
}

static void test_generic_secret(void **state)
{
	char t[400];
	snprintf(t, sizeof t, "password = \"%s\"\nDB_PASSWORD=%s\nclient_secret: '%s'\n", "correct-horse-battery",
		 "Tr0ub4dor3", "zxcvbnm9876");
	expect("generic_secret", t, 3, S("correct-horse-battery", "Tr0ub4dor3", "zxcvbnm9876"));
}

/* Ordinary text that must come out unchanged. */
static void test_false_positives(void **state)
{
	static const char *const texts[] = {
		"commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39\nAuthor: Dev <dev@example.com>\n",
		"git checkout 9fceb02d0ae598e95dc970b74767f19372d61af8 && git log -1 --format=%H",
		"id = \"123e4567-e89b-12d3-a456-426614174000\"; uuid.UUID('c9bf9e57-1685-4c89-bafb-ff5af830be8a')",
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"tokens = tokenizer.encode(text)\ntoken = tokens[0]\nmax_tokens = 4096\n",
		"api_key = os.environ[\"OPENAI_API_KEY\"]\npassword: str = getpass.getpass()\n",
		"{\"usage\": {\"prompt_tokens\": 123456, \"completion_tokens\": 789, \"total_tokens\": 124245}}",
		"{\"bos_token\": \"<s>\", \"eos_token\": \"<|endoftext|>\", \"pad_token\": \"[PAD]\"}",
		"pip install scikit-learn  # sk-learn-classification-model-registry is a name, not a key",
		"the bearer of bad news arrived; bearer tokens go in headers",
		"curl -H \"Authorization: Bearer $OPENAI_API_KEY\" http://localhost:8080/v1/models",
		"git clone https://github.com/ggml-org/llama.cpp && ssh git@github.com",
		"static int secret_groups(struct rrule *rule) { return token_count(rule) + 1; }",
		"for (size_t i = 0; i < n; i++) total += v[i]; /* password hashing in auth.c */",
		"The key AKIAEXAMPLE is too short; sk-1234 is not a key either.",
		"https://example.com:8443/path?user=bob&page=2",
		"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
	};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		struct buf out = BUF_INIT;
		struct ar_err e;
		int64_t n = redact_text(R, texts[i], strlen(texts[i]), &out, &e);
		if (n != 0)
			fail_msg("false positive (%lld) in '%s' -> '%s'", (long long)n, texts[i], out.data);
		assert_string_equal(out.data, texts[i]);
		buf_free(&out);
	}
}

/* Every sample of every kind in one text and in one JSON document: no
 * secret may survive anywhere, and a second pass finds nothing. */
static void test_nothing_survives(void **state)
{
	char secrets[24][600];
	int ns = 0;
#define ADD(s) snprintf(secrets[ns++], sizeof secrets[0], "%s", (s))
	ADD(mk("s" "k-", ALNUM, 48));
	ADD(mk("s" "k-ant-api03-", URLSAFE, 95));
	ADD(mk("gh" "p_", ALNUM, 36));
	ADD(mk("gl" "pat-", URLSAFE, 20));
	ADD(mk("h" "f_", ALNUM, 34));
	ADD(mk("AI" "za", URLSAFE, 35));
	ADD(mk("AK" "IA", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
	ADD(mk("sk" "_live_", ALNUM, 24));
	ADD(mk("np" "m_", ALNUM, 36));
	ADD(mk("h" "f_", ALNUM, 36));
#undef ADD
	struct buf text = BUF_INIT;
	for (int i = 0; i < ns; i++)
		buf_printf(&text, "line %d: %s and again \"%s\"\n", i, secrets[i], secrets[i]);
	buf_printf(&text, "Authorization: Bearer %s\n", mk("", ALNUM, 40));
	snprintf(secrets[ns++], sizeof secrets[0], "%s", mk("", ALNUM, 40));

	struct buf out = BUF_INIT;
	struct ar_err e;
	int64_t n = redact_text(R, text.data, text.len, &out, &e);
	assert_true(n >= 2 * (ns - 1) + 1);
	for (int i = 0; i < ns; i++)
		if (strstr(out.data, secrets[i]))
			fail_msg("'%s' survived in text", secrets[i]);
	struct buf again = BUF_INIT;
	assert_int_equal(redact_text(R, out.data, out.len, &again, &e), 0);
	assert_string_equal(again.data, out.data);

	/* JSON: as values, nested in arrays, as headers objects, and under
	 * sensitive keys where only the key gives the secret away */
	cJSON *root = cJSON_CreateObject();
	cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
	for (int i = 0; i < ns; i++) {
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "role", "user");
		char c[700];
		/* the last one is a bearer token: only its header gives it away */
		snprintf(c, sizeof c, i == ns - 1 ? "Authorization: Bearer %s" : "use %s please", secrets[i]);
		cJSON_AddStringToObject(m, "content", c);
		cJSON_AddItemToArray(msgs, m);
	}
	cJSON *hdr = cJSON_AddObjectToObject(root, "headers");
	cJSON_AddStringToObject(hdr, "Authorization", "Bearer Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5");
	cJSON_AddStringToObject(hdr, "x-api-key", "k9f8e7d6c5b4a3921");
	cJSON *cfg = cJSON_AddObjectToObject(root, "config");
	cJSON_AddStringToObject(cfg, "password", "Hunter2Hunter2");
	cJSON_AddStringToObject(cfg, "db_token", "q1w2e3r4t5y6");
	cJSON_AddStringToObject(cfg, "model", "gpt-4o-mini");
	int64_t jn = redact_json(R, root, &e);
	if (jn < ns + 4)
		fail_msg("%lld hits: %s", (long long)jn, cJSON_PrintUnformatted(root));
	char *js = cJSON_PrintUnformatted(root);
	for (int i = 0; i < ns; i++)
		if (strstr(js, secrets[i]))
			fail_msg("'%s' survived in JSON", secrets[i]);
	static const char *const more[] = {"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", "k9f8e7d6c5b4a3921", "Hunter2Hunter2",
					   "q1w2e3r4t5y6"};
	for (size_t i = 0; i < 4; i++)
		if (strstr(js, more[i]))
			fail_msg("'%s' survived in JSON: %s", more[i], js);
	assert_non_null(strstr(js, "\"model\":\"gpt-4o-mini\""));
	assert_non_null(strstr(js, "\"Authorization\":\"Bearer [REDACTED:bearer_token]"));
	assert_int_equal(redact_json(R, root, &e), 0);
	free(js);
	cJSON_Delete(root);
	buf_free(&text);
	buf_free(&out);
	buf_free(&again);
}

static void test_placeholder_shapes(void **state)
{
	struct buf out = BUF_INIT;
	const char *t = "redis://:ab1@h";
	assert_int_equal(redact_text(R, t, strlen(t), &out, NULL), 1);
	assert_string_equal(out.data, "redis://:***@h"); /* shorter than its placeholder */
	buf_free(&out);
}

static void test_invalid_utf8(void **state)
{
	char t[200];
	snprintf(t, sizeof t, "\xff\xfe caf\xc3\xa9 \xe2\x28\xa1 %s \xc3", mk("gh" "p_", ALNUM, 36));
	struct buf out = BUF_INIT;
	struct ar_err e;
	int64_t n = redact_text(R, t, strlen(t), &out, &e);
	if (n != 1)
		fail_msg("%lld: %s", (long long)n, e.msg);
	assert_int_equal(out.len, strlen(t));
	assert_null(strstr(out.data, "ghp_"));
	assert_int_equal(memcmp(out.data, t, 13), 0); /* the bytes before the secret are untouched */
	buf_free(&out);
}

static void test_ceiling(void **state)
{
	struct buf out;
	buf_init(&out, 8);
	struct ar_err e;
	const char *t = "a long enough text";
	assert_int_equal(redact_text(R, t, strlen(t), &out, &e), -1);
	assert_int_equal(e.code, AR_ELIMIT);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

static char *write_rules(const char *content)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/ar-redact-test-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	return path;
}

static void test_loader_errors(void **state)
{
	struct redact *r = NULL;
	struct ar_err e;
	char *p = write_rules("# comment\n\nmine   ok[a-z]+\nbroken  (unclosed\n");
	const char *files[] = {p};
	assert_int_equal(redact_new(&r, files, 1, 1, &e), -1);
	assert_null(r);
	char want[128];
	snprintf(want, sizeof want, "%s:4: bad pattern for 'broken' at offset 9: ", p);
	if (strncmp(e.msg, want, strlen(want)))
		fail_msg("message '%s'", e.msg);
	assert_non_null(strstr(e.msg, "missing closing parenthesis"));
	unlink(p);

	p = write_rules("Upper  x\n");
	files[0] = p;
	assert_int_equal(redact_new(&r, files, 1, 1, &e), -1);
	assert_non_null(strstr(e.msg, ":1: bad kind 'Upper'"));
	unlink(p);

	p = write_rules("lonely\n");
	files[0] = p;
	assert_int_equal(redact_new(&r, files, 1, 1, &e), -1);
	assert_non_null(strstr(e.msg, ":1: expected 'KIND  PATTERN'"));
	unlink(p);

	const char *missing[] = {"/nonexistent/redact.rules"};
	assert_int_equal(redact_new(&r, missing, 1, 1, &e), -1);
	assert_int_equal(e.code, AR_EIO);
	assert_non_null(strstr(e.msg, "'/nonexistent/redact.rules'"));
}

static void test_user_rules(void **state)
{
	/* a user file replaces a kind, switches one off, adds one */
	char *p = write_rules("openai  (?<![a-z])sk-(?<secret>[a-z]{4})\njwt -\nemployee_id  \\bEMP-(?<secret>[0-9]{6})\\b\n");
	const char *files[] = {p};
	struct redact *r = NULL;
	struct ar_err e;
	assert_int_equal(redact_new(&r, files, 1, 0, &e), 0);
	size_t nk = redact_n_kinds(r);
	assert_true(nk >= 20);
	bool has_jwt = false, has_emp = false;
	for (size_t i = 0; i < nk; i++) {
		has_jwt |= !strcmp(redact_kind(r, i), "jwt");
		has_emp |= !strcmp(redact_kind(r, i), "employee_id");
	}
	assert_false(has_jwt);
	assert_true(has_emp);
	char t[300];
	snprintf(t, sizeof t, "sk-abcd EMP-123456 ey" "JhbGciOiJIUzI1NiJ9.ey" "JzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijkl");
	struct buf out = BUF_INIT;
	assert_int_equal(redact_text(r, t, strlen(t), &out, &e), 2);
	assert_non_null(strstr(out.data, "sk-**** EMP-****** eyJhbGci"));
	buf_free(&out);
	redact_free(r);
	unlink(p);
	redact_free(NULL);
}

static void test_shipped_kinds(void **state)
{
	/* the issue asks for at least 20 kinds */
	assert_true(redact_n_kinds(R) >= 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openai),
		cmocka_unit_test(test_anthropic),
		cmocka_unit_test(test_aws_access_key_id),
		cmocka_unit_test(test_aws_secret_key),
		cmocka_unit_test(test_gcp_api_key),
		cmocka_unit_test(test_gcp_service_account),
		cmocka_unit_test(test_pem_private_key),
		cmocka_unit_test(test_github),
		cmocka_unit_test(test_gitlab),
		cmocka_unit_test(test_slack_token),
		cmocka_unit_test(test_slack_webhook),
		cmocka_unit_test(test_stripe),
		cmocka_unit_test(test_twilio),
		cmocka_unit_test(test_sendgrid),
		cmocka_unit_test(test_npm),
		cmocka_unit_test(test_pypi),
		cmocka_unit_test(test_huggingface),
		cmocka_unit_test(test_google_oauth),
		cmocka_unit_test(test_azure_storage),
		cmocka_unit_test(test_jwt),
		cmocka_unit_test(test_bearer_token),
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test(test_api_key_header),
		cmocka_unit_test(test_url_password),
		cmocka_unit_test(test_generic_secret),
		cmocka_unit_test(test_false_positives),
		cmocka_unit_test(test_nothing_survives),
		cmocka_unit_test(test_placeholder_shapes),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_ceiling),
		cmocka_unit_test(test_loader_errors),
		cmocka_unit_test(test_user_rules),
		cmocka_unit_test(test_shipped_kinds),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
