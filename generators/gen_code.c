#include "gen_code.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_words.h"

/* ---- language grammars -------------------------------------------------
 * Templates are gw_expand() templates with code slots (see code_slot()).
 * A '\n' in a template starts a new line; each leading '>' of that line
 * indents it one level deeper than the statement. */

struct opener {
	const char *open;
	const char *close; /* NULL: the block ends by dedent (Python) */
};

struct lang_def {
	const char *name, *ext, *fence, *indent;
	enum gw_case fn_case, var_case, type_case, field_case;
	const char *const *header; /* file start, one template per line group */
	size_t n_header;
	const char *const *type_def; /* a type definition ({fields} expands to field lines) */
	size_t n_type_def;
	const char *field_line;      /* one field of the type */
	const char *const *sig;      /* function signature + opening line(s) */
	size_t n_sig;
	const char *fn_close;        /* NULL: dedent */
	const char *const *simple;
	size_t n_simple;
	const struct opener *openers;
	size_t n_openers;
	const char *const *ret;
	size_t n_ret;
	const char *const *expr;
	size_t n_expr;
	const char *const *cond;
	size_t n_cond;
	const char *const *ptype; /* parameter / local types */
	size_t n_ptype;
	const char *comment; /* "// {comment}" etc. */
	const char *const *test_fn;   /* a whole test function */
	size_t n_test_fn;
	const char *const *test_header;
	size_t n_test_header;
	const char *const *decl; /* C header: one declaration */
	size_t n_decl;
	int body_depth; /* depth of a function body (2 inside a class/impl) */
	const char *class_open, *class_close; /* wraps functions (Python class, Rust impl, TS class) */
	const char *doc_open, *doc_line, *doc_close; /* doc comment opener, line prefix, closer */
};

#define A(x) x, (sizeof x / sizeof x[0])

/* C */
static const char *const c_header[] = {
	"/* {module}.c - {comment} */\n#include \"{module}.h\"\n\n#include <errno.h>\n#include <stdbool.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n\n#include \"{other_module}.h\"\n",
	"/*\n * {module}.c: {comment}.\n *\n * Part of {project}. See {module}.h for the interface.\n */\n#include \"{module}.h\"\n\n#include <assert.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n",
};
static const char *const c_type[] = {
	"#define {const} {num}\n\nstruct {type} {\n{fields}};\n",
	"struct {type} {\n{fields}};\n\nstatic const size_t {const} = {num};\n",
};
static const char *const c_sig[] = {
	"int {fn}(struct {type} *{p}, {ptype} {param})\n{",
	"static int {fn}(struct {type} *{p}, const char *{param}, size_t n)\n{",
	"size_t {fn}(const struct {type} *{p})\n{",
	"void {fn}(struct {type} *{p}, {ptype} {param})\n{",
	"struct {type} *{fn}(size_t {param})\n{",
	"static bool {fn}(const struct {type} *{p}, {ptype} {param})\n{",
};
static const char *const c_simple[] = {
	"{ptype} {var} = {expr};",
	"{p}->{field} = {expr};",
	"{call}({p}, {var});",
	"if ({cond})\n>return -1;",
	"if ({cond})\n>goto out;",
	"{var} += {num};",
	"memset({var}, 0, sizeof(*{var}));",
	"assert({cond});",
	"{p}->{field}++;",
	"rc = {call}({p}->{field}, {var});",
	"if (rc < 0)\n>return rc;",
	"free({p}->{field});",
	"{p}->{field} = NULL;",
	"size_t {var} = {p}->{field} % {const};",
	"fprintf(stderr, \"{module}: {verb} failed: %s\\n\", strerror(errno));",
};
static const struct opener c_open[] = {
	{"if ({cond}) {", "}"},
	{"for (size_t i = 0; i < {p}->{field}; i++) {", "}"},
	{"while ({var} != NULL) {", "}"},
	{"if ({cond}) {", "} else {"},
};
static const char *const c_ret[] = {"return 0;", "return {var};", "return {p}->{field};", "return rc;",
				    "return {expr};"};
static const char *const c_expr[] = {
	"{p}->{field}", "{call}({p})", "{var} + {num}", "{p}->{field} * {num}", "calloc({num}, sizeof(*{var}))",
	"strlen({var})", "{p}->{field}[i]", "{num}", "NULL", "&{p}->{field}", "{p}->{field} - {var}",
};
static const char *const c_cond[] = {
	"{var} == NULL", "{p}->{field} >= {p}->{field2}", "{var} < 0", "!{call}({p})", "{p}->{field} == 0",
	"{var} > {const}", "{p}->{field} & {const}", "n == 0", "{p}->{field} != {var}",
};
static const char *const c_ptype[] = {"int", "size_t", "uint32_t", "const char *", "bool", "int64_t", "uint8_t *"};
static const char *const c_test_header[] = {
	"/* Unit tests of {module}.c (cmocka). */\n#include <setjmp.h>\n#include <stdarg.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <cmocka.h>\n#include <string.h>\n\n#include \"{module}.h\"\n",
};
static const char *const c_test_fn[] = {
	"static void test_{fn}_{adj}(void **state)\n{\n>struct {type} *{var} = {module}_new({num});\n>assert_non_null({var});\n>assert_int_equal({fn}({var}, {num}), 0);\n>assert_int_equal({var}->{field}, {num});\n>{module}_free({var});\n}\n",
	"static void test_{fn}_{adj}(void **state)\n{\n>struct {type} {var};\n>memset(&{var}, 0, sizeof({var}));\n>int rc = {fn}(&{var}, {num});\n>assert_int_equal(rc, -1);\n>assert_int_equal({var}.{field}, 0);\n}\n",
};
static const char *const c_decl[] = {
	"int {fn}(struct {type} *{p}, {ptype} {param});",
	"size_t {fn}(const struct {type} *{p});",
	"/* {comment}. Returns 0 or -1. */\nint {fn}(struct {type} *{p}, const char *{param});",
};

/* Python */
static const char *const py_header[] = {
	"\"\"\"{comment}.\"\"\"\n\nfrom __future__ import annotations\n\nimport logging\nfrom dataclasses import dataclass, field\nfrom typing import Optional\n\nfrom {project}.{other_module} import {other_type}\n\nlog = logging.getLogger(__name__)\n",
	"\"\"\"{project}.{module}: {comment}.\"\"\"\n\nimport os\nimport threading\nfrom collections import OrderedDict\n\nfrom .errors import {type}Error\n",
};
static const char *const py_type[] = {
	"{const} = {num}\n\n\n@dataclass\nclass {type}Config:\n{fields}",
};
static const char *const py_sig[] = {
	"def {fn}(self, {param}: {ptype}) -> {ptype}:\n>\"\"\"{comment}.\"\"\"",
	"def {fn}(self, {param}: {ptype}, *, {param2}: bool = False) -> None:",
	"def {fn}(self) -> int:",
	"def {fn}(self, {param}: Optional[{ptype}] = None) -> Optional[{other_type}]:\n>\"\"\"{comment}.\"\"\"",
};
static const char *const py_simple[] = {
	"{var} = {expr}",
	"self._{field} = {expr}",
	"self.{call}({var})",
	"if {cond}:\n>raise {type}Error(f\"{verb} failed for {lb}{var}{rb}\")",
	"if {cond}:\n>return None",
	"{var} += {num}",
	"log.debug(\"{verb} %s\", {var})",
	"# {comment}",
	"assert {cond}",
	"self._{field}[{var}] = {var2}",
	"{var} = self._{field}.get({param}, {num})",
};
static const struct opener py_open[] = {
	{"if {cond}:", NULL},
	{"for {var} in self._{field}:", NULL},
	{"with self._lock:", NULL},
	{"try:", NULL},
	{"while {cond}:", NULL},
};
static const char *const py_ret[] = {"return {var}", "return self._{field}", "return len(self._{field})",
				     "return {expr}", "return None"};
static const char *const py_expr[] = {
	"self._{field}", "self.{call}({var})", "{var} + {num}", "len(self._{field})", "{num}",
	"[{var2} for {var2} in self._{field} if {var2}]", "{other_type}({var})", "dict()", "{param} or {num}",
};
static const char *const py_cond[] = {
	"{var} is None", "not self._{field}", "{var} > {const}", "len(self._{field}) >= {num}",
	"self._{field} != {var}", "{param} in self._{field}", "not {var}",
};
static const char *const py_ptype[] = {"int", "str", "bytes", "list[str]", "dict[str, int]", "float"};
static const char *const py_test_header[] = {
	"import pytest\n\nfrom {project}.{module} import {type}\n",
};
static const char *const py_test_fn[] = {
	"def test_{fn}_{adj}():\n>{var} = {type}({num})\n>assert {var}.{fn}({num}) == {num}\n",
	"def test_{fn}_{adj}(tmp_path):\n>{var} = {type}(tmp_path / \"{noun}.db\")\n>{var}.{fn}(\"{noun}\")\n>with pytest.raises({type}Error):\n>>{var}.{fn}(None)\n",
};

/* TypeScript */
static const char *const ts_header[] = {
	"import { {other_type} } from './{other_module}';\nimport { logger } from '../util/logger';\n\n/** {comment}. */\n",
	"import assert from 'node:assert';\nimport type { {other_type}Options } from './{other_module}';\n",
};
static const char *const ts_type[] = {
	"export const {const} = {num};\n\nexport interface {type}Options {\n{fields}}\n",
};
static const char *const ts_sig[] = {
	"{fn}({param}: {ptype}): {ptype} {",
	"async {fn}({param}: {ptype}, {param2}?: {ptype}): Promise<void> {",
	"private {fn}(): number {",
	"public {fn}({param}: {other_type}): boolean {",
};
static const char *const ts_simple[] = {
	"const {var} = {expr};",
	"this.{field} = {expr};",
	"this.{call}({var});",
	"if ({cond}) {\n>throw new Error(`{verb} failed: ${lb}{var}{rb}`);\n}",
	"if ({cond}) return;",
	"{var} += {num};",
	"logger.debug('{verb} {noun}', { {var} });",
	"// {comment}",
	"let {var} = this.{field}.get({param}) ?? {num};",
	"await this.{call}({var});",
	"this.{field}.set({param}, {var});",
};
static const struct opener ts_open[] = {
	{"if ({cond}) {", "}"},
	{"for (const {var} of this.{field}) {", "}"},
	{"try {", "} catch (err) {"},
	{"while ({cond}) {", "}"},
};
static const char *const ts_ret[] = {"return {var};", "return this.{field};", "return {expr};", "return;"};
static const char *const ts_expr[] = {
	"this.{field}", "this.{call}({var})", "{var} + {num}", "this.{field}.length", "{num}",
	"new {other_type}({var})", "this.{field}.filter(({var2}) => {var2}.{field2})", "[]", "{param} ?? {num}",
};
static const char *const ts_cond[] = {
	"!{var}", "this.{field}.length === 0", "{var} > {const}", "this.{field}.has({param})",
	"{var} === undefined", "this.{field} !== {var}",
};
static const char *const ts_ptype[] = {"string", "number", "boolean", "string[]", "Map<string, number>",
				       "Record<string, unknown>"};
static const char *const ts_test_header[] = {
	"import { describe, expect, it } from 'vitest';\nimport { {type} } from '../src/{module}';\n",
};
static const char *const ts_test_fn[] = {
	"describe('{type}.{fn}', () => {\n>it('handles an {adj} {noun}', () => {\n>>const {var} = new {type}({ limit: {num} });\n>>expect({var}.{fn}({num})).toBe({num});\n>});\n});\n",
	"it('{verb}s the {noun} when it is {adj}', async () => {\n>const {var} = new {type}();\n>await expect({var}.{fn}('{noun}')).rejects.toThrow('{verb} failed');\n});\n",
};

/* Go */
static const char *const go_header[] = {
	"// Package {module} {comment}.\npackage {module}\n\nimport (\n>\"context\"\n>\"errors\"\n>\"fmt\"\n>\"sync\"\n\n>\"github.com/{project}/{project}/internal/{other_module}\"\n)\n",
	"package {module}\n\nimport (\n>\"fmt\"\n>\"sort\"\n>\"strings\"\n)\n",
};
static const char *const go_type[] = {
	"const {const} = {num}\n\n// {type} {comment}.\ntype {type} struct {\n>mu sync.Mutex\n{fields}}\n",
	"var Err{type} = errors.New(\"{module}: {adj} {noun}\")\n\ntype {type} struct {\n{fields}}\n",
};
static const char *const go_sig[] = {
	"func (s *{type}) {fn}(ctx context.Context, {param} string) (*{other_module}.{other_type}, error) {",
	"func (s *{type}) {fn}({param} int) error {",
	"func (s *{type}) {fn}() int {",
	"func {fn}({param} []string) ([]string, error) {",
};
static const char *const go_simple[] = {
	"{var} := {expr}",
	"s.{field} = {expr}",
	"s.{call}({var})",
	"if err != nil {\n>return fmt.Errorf(\"{verb} {noun}: %w\", err)\n}",
	"if {cond} {\n>return nil, Err{type}\n}",
	"{var} += {num}",
	"// {comment}",
	"{var}, err := s.{field}.{call}(ctx, {param})",
	"s.mu.Lock()\ndefer s.mu.Unlock()",
	"s.{field}[{param}] = {var}",
};
static const struct opener go_open[] = {
	{"if {cond} {", "}"},
	{"for _, {var} := range s.{field} {", "}"},
	{"for i := 0; i < len(s.{field}); i++ {", "}"},
	{"select {\ncase <-ctx.Done():\n>return ctx.Err()\ndefault:", "}"},
};
static const char *const go_ret[] = {"return nil", "return {var}, nil", "return s.{field}", "return len(s.{field})",
				     "return {expr}"};
static const char *const go_expr[] = {
	"s.{field}", "s.{call}({var})", "{var} + {num}", "len(s.{field})", "{num}",
	"make(map[string]int, {num})", "strings.TrimSpace({param})", "{other_module}.New{other_type}()",
};
static const char *const go_cond[] = {
	"{var} == nil", "len(s.{field}) == 0", "{var} > {const}", "s.{field} != {var}", "!ok", "err != nil",
};
static const char *const go_ptype[] = {"int", "string", "[]byte", "bool", "int64"};
static const char *const go_test_header[] = {
	"package {module}\n\nimport (\n>\"context\"\n>\"testing\"\n)\n",
};
static const char *const go_test_fn[] = {
	"func Test{fn}{type}(t *testing.T) {\n>s := New{type}()\n>if got := s.{fn}({num}); got != nil {\n>>t.Fatalf(\"{fn}() = %v, want nil\", got)\n>}\n}\n",
	"func Test{fn}{adj}(t *testing.T) {\n>tests := []struct {\n>>name string\n>>in   int\n>>want int\n>}{\n>>{\"{adj}\", {num}, {num}},\n>>{\"{noun}\", {num}, {num}},\n>}\n>for _, tt := range tests {\n>>t.Run(tt.name, func(t *testing.T) {\n>>>if got := New{type}().{fn}(tt.in); got != tt.want {\n>>>>t.Errorf(\"got %d, want %d\", got, tt.want)\n>>>}\n>>})\n>}\n}\n",
};

/* Rust */
static const char *const rs_header[] = {
	"//! {comment}.\n\nuse std::collections::HashMap;\nuse std::sync::{Arc, Mutex};\n\nuse crate::{other_module}::{other_type};\nuse crate::error::{Error, Result};\n",
	"use std::fmt;\nuse std::io::{self, Read, Write};\n\nuse crate::{other_module};\n",
};
static const char *const rs_type[] = {
	"const {const}: usize = {num};\n\n/// {comment}.\n#[derive(Debug, Default)]\npub struct {type} {\n{fields}}\n",
};
static const char *const rs_sig[] = {
	"pub fn {fn}(&mut self, {param}: &str) -> Result<Option<{other_type}>> {",
	"pub fn {fn}(&self) -> usize {",
	"fn {fn}(&mut self, {param}: usize) -> Result<()> {",
	"pub fn {fn}(&self, {param}: &[u8]) -> bool {",
};
static const char *const rs_simple[] = {
	"let {var} = {expr};",
	"self.{field} = {expr};",
	"self.{call}({var})?;",
	"if {cond} {\n>return Err(Error::{type}(format!(\"{verb} failed: {}\", {var})));\n}",
	"let mut {var} = {num};",
	"{var} += {num};",
	"// {comment}",
	"self.{field}.insert({param}.to_string(), {var});",
	"tracing::debug!(?{var}, \"{verb} {noun}\");",
	"let {var} = self.{field}.get({param}).ok_or(Error::NotFound)?;",
};
static const struct opener rs_open[] = {
	{"if {cond} {", "}"},
	{"for {var} in &self.{field} {", "}"},
	{"while let Some({var}) = self.{field}.pop() {", "}"},
	{"match self.{field}.get({param}) {\n>Some({var}) => {", ">}\n>None => {}\n}"},
};
static const char *const rs_ret[] = {"Ok(())", "Ok(Some({var}))", "self.{field}.len()", "{var}", "Ok(None)"};
static const char *const rs_expr[] = {
	"self.{field}.len()", "self.{call}({var})?", "{var} + {num}", "{num}", "Vec::with_capacity({num})",
	"{other_type}::new({var})", "self.{field}.clone()", "HashMap::new()",
};
static const char *const rs_cond[] = {
	"{var}.is_empty()", "self.{field}.len() >= {const}", "{var} > {num}", "!self.{field}.contains_key({param})",
	"self.{field}.is_none()",
};
static const char *const rs_ptype[] = {"usize", "String", "Vec<u8>", "bool", "u64", "Option<String>"};
static const char *const rs_test_header[] = {
	"use super::*;\n",
};
static const char *const rs_test_fn[] = {
	"#[test]\nfn {fn}_{adj}() {\n>let mut {var} = {type}::default();\n>assert_eq!({var}.{fn}({num}), {num});\n}\n",
	"#[test]\nfn {fn}_rejects_{adj}_{noun}() {\n>let mut {var} = {type}::default();\n>let err = {var}.{fn}(\"\").unwrap_err();\n>assert!(matches!(err, Error::{type}(_)));\n}\n",
};

static const struct lang_def langs[GEN_LANG_N] = {
	[GEN_LANG_C] = {"c", "c", "c", "\t", GW_SNAKE, GW_SNAKE, GW_SNAKE, GW_SNAKE, A(c_header), A(c_type),
			"\t{ptype} {field};\n", A(c_sig), "}", A(c_simple), A(c_open), A(c_ret), A(c_expr),
			A(c_cond), A(c_ptype), "/* {comment} */", A(c_test_fn), A(c_test_header), A(c_decl), 1,
			NULL, NULL, "/*", " * ", " */"},
	[GEN_LANG_PYTHON] = {"python", "py", "python", "    ", GW_SNAKE, GW_SNAKE, GW_PASCAL, GW_SNAKE,
			     A(py_header), A(py_type), "    {field}: {ptype} = {num}\n", A(py_sig), NULL,
			     A(py_simple), A(py_open), A(py_ret), A(py_expr), A(py_cond), A(py_ptype), "# {comment}",
			     A(py_test_fn), A(py_test_header), NULL, 0, 2,
			     "class {type}:\n>\"\"\"{comment}.\"\"\"\n\n>def __init__(self, limit: int = {num}) -> None:\n>>self._{field} = {}\n>>self._lock = threading.Lock()\n",
			     NULL, NULL, "# ", NULL},
	[GEN_LANG_TS] = {"typescript", "ts", "typescript", "  ", GW_CAMEL, GW_CAMEL, GW_PASCAL, GW_CAMEL,
			 A(ts_header), A(ts_type), "  {field}: {ptype};\n", A(ts_sig), "}", A(ts_simple), A(ts_open),
			 A(ts_ret), A(ts_expr), A(ts_cond), A(ts_ptype), "// {comment}", A(ts_test_fn),
			 A(ts_test_header), NULL, 0, 2,
			 "export class {type} {\n>private readonly {field} = new Map<string, number>();\n\n>constructor(private readonly options: {type}Options) {}\n",
			 "}", "/**", " * ", " */"},
	[GEN_LANG_GO] = {"go", "go", "go", "\t", GW_PASCAL, GW_CAMEL, GW_PASCAL, GW_CAMEL, A(go_header), A(go_type),
			 "\t{field} {ptype}\n", A(go_sig), "}", A(go_simple), A(go_open), A(go_ret), A(go_expr),
			 A(go_cond), A(go_ptype), "// {comment}", A(go_test_fn), A(go_test_header), NULL, 0, 1, NULL,
			 NULL, NULL, "// ", NULL},
	[GEN_LANG_RUST] = {"rust", "rs", "rust", "    ", GW_SNAKE, GW_SNAKE, GW_PASCAL, GW_SNAKE, A(rs_header),
			   A(rs_type), "    {field}: {ptype},\n", A(rs_sig), "}", A(rs_simple), A(rs_open), A(rs_ret),
			   A(rs_expr), A(rs_cond), A(rs_ptype), "// {comment}", A(rs_test_fn), A(rs_test_header),
			   NULL, 0, 2, "impl {type} {\n>pub fn new() -> Self {\n>>Self::default()\n>}\n", "}", NULL, "/// ", NULL},
};

const char *gen_lang_name(enum gen_lang l) { return (unsigned)l < GEN_LANG_N ? langs[l].name : "?"; }
const char *gen_lang_ext(enum gen_lang l) { return (unsigned)l < GEN_LANG_N ? langs[l].ext : "txt"; }
const char *gen_lang_fence(enum gen_lang l) { return (unsigned)l < GEN_LANG_N ? langs[l].fence : ""; }
const char *gen_code_indent(enum gen_lang l) { return (unsigned)l < GEN_LANG_N ? langs[l].indent : "  "; }

int gen_lang_parse(const char *name, enum gen_lang *out)
{
	for (int i = 0; i < GEN_LANG_N; i++)
		if (!strcmp(name, langs[i].name) || !strcmp(name, langs[i].ext)) {
			*out = (enum gen_lang)i;
			return 0;
		}
	return -1;
}

/* ---- the generator ----------------------------------------------------- */

#define MAX_FIELDS 8
#define MAX_VARS 6
#define MEMO 12

struct gen_code {
	const struct lang_def *L;
	enum gen_lang lang;
	struct rng r;
	char project[40], module[40], type[64], other_module[40], other_type[64];
	char fns[GEN_CODE_MAX_FNS][64];
	int n_fns;
	bool test, header;
	char fields[MAX_FIELDS][40];
	int n_fields;
	char vars[MAX_VARS][40];
	int n_vars;
	char consts[3][40];
	char p[8];       /* the receiver / struct pointer name (C) */
	char param[40], param2[40];
	int next_fn;     /* index of the next function to emit */
	int units;       /* units emitted */
	bool in_class;
	bool class_closed;
	struct buf queue; /* lines waiting to be handed out */
	size_t qpos;
	/* per-template memo of slot values */
	struct {
		char name[12];
		char val[72];
	} memo[MEMO];
	int n_memo;
	struct buf tmp;
};

static void pick_ident(struct gen_code *g, char *out, size_t n, enum gw_case c, int words)
{
	const char *a = gw_adj(&g->r), *b = gw_noun(&g->r);
	if (words == 1)
		gw_ident_to(out, n, c, b, NULL, NULL);
	else
		gw_ident_to(out, n, c, a, b, NULL);
}

int gen_code_new(struct gen_code **out, const struct gen_code_ctx *ctx, uint64_t seed)
{
	*out = NULL;
	if ((unsigned)ctx->lang >= GEN_LANG_N)
		return -1;
	struct gen_code *g = calloc(1, sizeof *g);
	if (!g)
		return -1;
	g->L = &langs[ctx->lang];
	g->lang = ctx->lang;
	rng_seed(&g->r, seed);
	snprintf(g->project, sizeof g->project, "%s", ctx->project ? ctx->project : "app");
	snprintf(g->module, sizeof g->module, "%s", ctx->module ? ctx->module : "core");
	snprintf(g->type, sizeof g->type, "%s", ctx->type ? ctx->type : "Core");
	snprintf(g->other_module, sizeof g->other_module, "%s", ctx->other_module ? ctx->other_module : "util");
	snprintf(g->other_type, sizeof g->other_type, "%s", ctx->other_type ? ctx->other_type : "Util");
	for (int i = 0; i < ctx->n_fns && i < GEN_CODE_MAX_FNS; i++)
		snprintf(g->fns[g->n_fns++], sizeof g->fns[0], "%s", ctx->fns[i]);
	if (!g->n_fns)
		snprintf(g->fns[g->n_fns++], sizeof g->fns[0], "%s", "run");
	g->test = ctx->test;
	g->header = ctx->header && ctx->lang == GEN_LANG_C;
	/* fields: stable per module (seeded from the module name), so every file
	 * of the module names the same members */
	struct rng fr;
	rng_seed(&fr, rng_hash(g->module) ^ 0x5eed);
	g->n_fields = 4 + (int)rng_below(&fr, MAX_FIELDS - 3);
	for (int i = 0; i < g->n_fields; i++) {
		const char *a = gw_adj(&fr), *b = gw_noun(&fr);
		if (rng_below(&fr, 6) == 0)
			gw_ident_to(g->fields[i], sizeof g->fields[i], g->L->field_case, a, b, NULL);
		else
			gw_ident_to(g->fields[i], sizeof g->fields[i], g->L->field_case, b, NULL, NULL);
	}
	for (int i = 0; i < 3; i++) {
		const char *a = gw_adj(&fr), *b = gw_noun(&fr);
		gw_ident_to(g->consts[i], sizeof g->consts[i], GW_UPPER, a, b, NULL);
	}
	snprintf(g->p, sizeof g->p, "%c", g->module[0] ? g->module[0] : 'p');
	buf_init(&g->queue, 0);
	buf_init(&g->tmp, 0);
	*out = g;
	return 0;
}

void gen_code_free(struct gen_code *g)
{
	if (!g)
		return;
	buf_free(&g->queue);
	buf_free(&g->tmp);
	free(g);
}

static const char *pick(struct rng *r, const char *const *a, size_t n)
{
	return n ? a[rng_below(r, n)] : "";
}

static int code_slot(void *ctx, const char *name, size_t n, struct buf *b);
static void pick_local(struct gen_code *g, char *out, size_t n);

/* strlcpy: snprintf's formatting machinery is measurable here */
static void copy(char *out, size_t n, const char *s)
{
	size_t len = strlen(s);
	if (len >= n)
		len = n - 1;
	memcpy(out, s, len);
	out[len] = 0;
}

/* Expands t with fresh memo into b. */
static int expand(struct gen_code *g, struct buf *b, const char *t)
{
	g->n_memo = 0;
	return gw_expand(b, t, &g->r, code_slot, g);
}

static int nested(struct gen_code *g, struct buf *b, const char *t)
{
	/* expressions and conditions share the enclosing template's memo */
	return gw_expand(b, t, &g->r, code_slot, g);
}

static int code_slot(void *ctx, const char *name, size_t n, struct buf *b)
{
	struct gen_code *g = ctx;
	const struct lang_def *L = g->L;
	char key[16];
	if (n >= sizeof key)
		return 0;
	memcpy(key, name, n);
	key[n] = 0;
	/* nested templates are expanded directly, never memoised */
	if (!strcmp(key, "expr"))
		return nested(g, b, pick(&g->r, L->expr, L->n_expr)) < 0 ? -1 : 1;
	if (!strcmp(key, "cond"))
		return nested(g, b, pick(&g->r, L->cond, L->n_cond)) < 0 ? -1 : 1;
	if (!strcmp(key, "lb"))
		return buf_putc(b, '{') < 0 ? -1 : 1;
	if (!strcmp(key, "rb"))
		return buf_putc(b, '}') < 0 ? -1 : 1;
	if (!strcmp(key, "comment")) {
		struct buf c = BUF_INIT;
		int rc = gw_sentence(&c, GW_COMMENT, &g->r, NULL, NULL);
		if (rc == 0 && c.data)
			rc = buf_puts(b, c.data);
		buf_free(&c);
		return rc < 0 ? -1 : 1;
	}
	for (int i = 0; i < g->n_memo; i++)
		if (!strcmp(g->memo[i].name, key))
			return buf_puts(b, g->memo[i].val) < 0 ? -1 : 1;
	char val[72];
	val[0] = 0;
	if (!strcmp(key, "fn")) {
		copy(val, sizeof val, g->fns[g->next_fn % g->n_fns]);
	} else if (!strcmp(key, "call")) {
		copy(val, sizeof val, g->fns[rng_below(&g->r, (uint64_t)g->n_fns)]);
	} else if (!strcmp(key, "type")) {
		copy(val, sizeof val, g->type);
	} else if (!strcmp(key, "other_type")) {
		copy(val, sizeof val, g->other_type);
	} else if (!strcmp(key, "module")) {
		copy(val, sizeof val, g->module);
	} else if (!strcmp(key, "other_module")) {
		copy(val, sizeof val, g->other_module);
	} else if (!strcmp(key, "project")) {
		copy(val, sizeof val, g->project);
	} else if (!strcmp(key, "field") || !strcmp(key, "field2")) {
		copy(val, sizeof val, g->fields[rng_below(&g->r, (uint64_t)g->n_fields)]);
	} else if (!strcmp(key, "var") || !strcmp(key, "var2")) {
		if (g->n_vars && rng_below(&g->r, 4) != 0)
			copy(val, sizeof val, g->vars[rng_below(&g->r, (uint64_t)g->n_vars)]);
		else
			pick_local(g, val, sizeof val);
	} else if (!strcmp(key, "param")) {
		copy(val, sizeof val, g->param);
	} else if (!strcmp(key, "param2")) {
		copy(val, sizeof val, g->param2);
	} else if (!strcmp(key, "p")) {
		copy(val, sizeof val, g->p);
	} else if (!strcmp(key, "const")) {
		copy(val, sizeof val, g->consts[rng_below(&g->r, 3)]);
	} else if (!strcmp(key, "ptype")) {
		copy(val, sizeof val, pick(&g->r, L->ptype, L->n_ptype));
	} else if (!strcmp(key, "num")) {
		static const unsigned nums[] = {0, 1, 2, 4, 8, 16, 32, 64, 100, 128, 256, 1024, 4096, 3, 10};
		snprintf(val, sizeof val, "%u", nums[rng_below(&g->r, sizeof nums / sizeof nums[0])]);
	} else {
		return 0; /* noun, verb, adj: generic */
	}
	if (g->n_memo < MEMO) {
		copy(g->memo[g->n_memo].name, sizeof g->memo[0].name, key);
		copy(g->memo[g->n_memo].val, sizeof g->memo[0].val, val);
		g->n_memo++;
	}
	return buf_puts(b, val) < 0 ? -1 : 1;
}

/* Appends template text t at indent `depth` to the queue: splits lines,
 * applies '>' markers. */
static int emit(struct gen_code *g, int depth, const char *t)
{
	if (!*t)
		return buf_putc(&g->queue, '\n');
	buf_reset(&g->tmp);
	if (expand(g, &g->tmp, t) < 0)
		return -1;
	const char *s = g->tmp.data ? g->tmp.data : "";
	while (*s) {
		const char *e = strchr(s, '\n');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		int d = depth;
		while (len && *s == '>') {
			d++;
			s++;
			len--;
		}
		if (len) {
			for (int i = 0; i < d; i++)
				if (buf_puts(&g->queue, g->L->indent) < 0)
					return -1;
			if (buf_append(&g->queue, s, len) < 0)
				return -1;
		}
		if (buf_putc(&g->queue, '\n') < 0)
			return -1;
		if (!e)
			break;
		s = e + 1;
	}
	return 0;
}

static int emit_fields(struct gen_code *g, const char *type_tmpl)
{
	/* {fields} is replaced by the field lines before expansion */
	struct buf t = BUF_INIT;
	const char *f = strstr(type_tmpl, "{fields}");
	int rc = 0;
	if (!f)
		return emit(g, 0, type_tmpl);
	rc |= buf_append(&t, type_tmpl, (size_t)(f - type_tmpl));
	for (int i = 0; i < g->n_fields && rc == 0; i++) {
		/* the field line template has {field}, {ptype}, {num}: fill per line */
		for (const char *fl = g->L->field_line; *fl && rc == 0;) {
			if (!strncmp(fl, "{field}", 7)) {
				rc |= buf_puts(&t, g->fields[i]);
				fl += 7;
			} else if (!strncmp(fl, "{ptype}", 7)) {
				rc |= buf_puts(&t, pick(&g->r, g->L->ptype, g->L->n_ptype));
				fl += 7;
			} else if (!strncmp(fl, "{num}", 5)) {
				rc |= buf_printf(&t, "%u", (unsigned)rng_below(&g->r, 5) * 8);
				fl += 5;
			} else {
				rc |= buf_putc(&t, *fl++);
			}
		}
	}
	rc |= buf_puts(&t, f + 8);
	if (rc == 0)
		rc = emit(g, 0, t.data);
	buf_free(&t);
	return rc;
}

/* Locals are mostly short, as in real code: n, len, buf, err, one noun. */
static void pick_local(struct gen_code *g, char *out, size_t n)
{
	static const char *const shorts[] = {"n", "len", "buf", "err", "ok", "key", "val", "ret", "tmp", "out",
					     "res", "idx", "cur", "next", "item", "data", "name", "size"};
	uint64_t k = rng_below(&g->r, 10);
	if (k < 4)
		copy(out, n, shorts[rng_below(&g->r, sizeof shorts / sizeof shorts[0])]);
	else
		pick_ident(g, out, n, g->L->var_case, k == 9 ? 2 : 1);
}

static void new_locals(struct gen_code *g)
{
	g->n_vars = 2 + (int)rng_below(&g->r, MAX_VARS - 2);
	for (int i = 0; i < g->n_vars; i++)
		pick_local(g, g->vars[i], sizeof g->vars[i]);
	pick_ident(g, g->param, sizeof g->param, g->L->var_case, 1);
	pick_ident(g, g->param2, sizeof g->param2, g->L->var_case, 2);
}

static int block(struct gen_code *g, int depth, int budget)
{
	const struct lang_def *L = g->L;
	while (budget-- > 0) {
		uint64_t k = rng_below(&g->r, 10);
		if (k < 2 && depth < L->body_depth + 2) {
			const struct opener *o = &L->openers[rng_below(&g->r, L->n_openers)];
			if (emit(g, depth, o->open) < 0)
				return -1;
			if (block(g, depth + 1, 1 + (int)rng_below(&g->r, 3)) < 0)
				return -1;
			if (o->close) {
				if (emit(g, depth, o->close) < 0)
					return -1;
				if (!strcmp(o->close, "} else {") || !strcmp(o->close, "} catch (err) {")) {
					if (block(g, depth + 1, 1) < 0 || emit(g, depth, "}") < 0)
						return -1;
				}
			} else if (!strcmp(o->open, "try:")) {
				if (emit(g, depth, "except {type}Error:") < 0 || block(g, depth + 1, 1) < 0)
					return -1;
			}
		} else if (k == 9 && rng_below(&g->r, 2) == 0 && L->comment) {
			if (emit(g, depth, L->comment) < 0)
				return -1;
		} else if (emit(g, depth, pick(&g->r, L->simple, L->n_simple)) < 0) {
			return -1;
		}
	}
	return 0;
}

static int unit_function(struct gen_code *g)
{
	const struct lang_def *L = g->L;
	int d = L->body_depth - 1;
	new_locals(g);
	/* most functions carry a doc comment: one to four sentences of prose */
	if (rng_below(&g->r, 10) < 7 && L->doc_line && g->lang != GEN_LANG_PYTHON) {
		if (L->doc_open && emit(g, d, L->doc_open) < 0)
			return -1;
		int n = 1 + (int)rng_below(&g->r, 4);
		for (int i = 0; i < n; i++) {
			struct buf t = BUF_INIT;
			int rc = buf_puts(&t, L->doc_line);
			if (rc == 0)
				rc = gw_sentence(&t, i == 0 ? GW_EXPLAIN : GW_DOC, &g->r, NULL, NULL);
			if (rc == 0)
				rc = emit(g, d, t.data);
			buf_free(&t);
			if (rc < 0)
				return -1;
		}
		if (L->doc_close && emit(g, d, L->doc_close) < 0)
			return -1;
	} else if (rng_below(&g->r, 3) == 0 && L->comment && emit(g, d, L->comment) < 0) {
		return -1;
	}
	if (emit(g, d, pick(&g->r, L->sig, L->n_sig)) < 0)
		return -1;
	if (block(g, d + 1, 3 + (int)rng_below(&g->r, 12)) < 0)
		return -1;
	if (emit(g, d + 1, pick(&g->r, L->ret, L->n_ret)) < 0)
		return -1;
	if (L->fn_close && emit(g, d, L->fn_close) < 0)
		return -1;
	g->next_fn++;
	return emit(g, 0, "");
}

/* Generates the next unit into the queue. */
static int next_unit(struct gen_code *g)
{
	const struct lang_def *L = g->L;
	int u = g->units++;
	if (g->test) {
		if (u == 0)
			return emit(g, 0, pick(&g->r, L->test_header, L->n_test_header)) < 0 ? -1 : emit(g, 0, "");
		new_locals(g);
		int rc = emit(g, 0, pick(&g->r, L->test_fn, L->n_test_fn));
		g->next_fn++;
		return rc < 0 ? -1 : emit(g, 0, "");
	}
	if (g->header) {
		if (u == 0) {
			char guard[64];
			gw_ident_to(guard, sizeof guard, GW_UPPER, g->project, g->module, "h");
			struct buf t = BUF_INIT;
			int rc = buf_printf(&t, "/* %s.h: {comment}. */\n#ifndef %s\n#define %s\n\n#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n",
					    g->module, guard, guard);
			if (rc == 0)
				rc = emit(g, 0, t.data);
			buf_free(&t);
			return rc;
		}
		if (u == 1)
			return emit_fields(g, pick(&g->r, L->type_def, L->n_type_def));
		new_locals(g);
		int rc = emit(g, 0, pick(&g->r, L->decl, L->n_decl));
		g->next_fn++;
		return rc < 0 ? -1 : emit(g, 0, "");
	}
	if (u == 0)
		return emit(g, 0, pick(&g->r, L->header, L->n_header)) < 0 ? -1 : emit(g, 0, "");
	if (u == 1)
		return emit_fields(g, pick(&g->r, L->type_def, L->n_type_def)) < 0 ? -1 : emit(g, 0, "");
	if (L->class_open && !g->in_class) {
		g->in_class = true;
		new_locals(g);
		if (emit(g, 0, L->class_open) < 0)
			return -1;
	}
	return unit_function(g);
}

int gen_code_line(struct gen_code *g, struct buf *b)
{
	while (g->qpos >= g->queue.len) {
		buf_reset(&g->queue);
		g->qpos = 0;
		if (next_unit(g) < 0)
			return -1;
	}
	const char *s = g->queue.data + g->qpos;
	const char *e = memchr(s, '\n', g->queue.len - g->qpos);
	size_t len = e ? (size_t)(e - s) + 1 : g->queue.len - g->qpos;
	g->qpos += len;
	return buf_append(b, s, len);
}

int gen_code_statement(struct gen_code *g, struct buf *b, int depth)
{
	if (!g->n_vars)
		new_locals(g);
	struct buf t = BUF_INIT;
	g->n_memo = 0;
	/* single-line statements only */
	const char *tmpl = pick(&g->r, g->L->simple, g->L->n_simple);
	for (int tries = 0; tries < 8 && strchr(tmpl, '\n'); tries++)
		tmpl = pick(&g->r, g->L->simple, g->L->n_simple);
	int rc = gw_expand(&t, tmpl, &g->r, code_slot, g);
	if (rc == 0 && t.data) {
		/* first line only, markers dropped */
		size_t len = strcspn(t.data, "\n");
		for (int i = 0; i < depth && rc == 0; i++)
			rc = buf_puts(b, g->L->indent);
		if (rc == 0)
			rc = buf_append(b, t.data, len);
	}
	buf_free(&t);
	return rc;
}
