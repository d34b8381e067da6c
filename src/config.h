/* config: YAML (and so JSON) documents loaded into cJSON trees, with the line
 * of every node kept so later checks can say where a bad value is.
 *
 * Scalars follow the YAML 1.2 core schema: plain `null`/`~`/empty are null,
 * `true`/`false` booleans, decimal/hex/octal integers and decimal floats
 * numbers, everything else (and every quoted scalar) a string. Anchors and
 * aliases are refused (a config that needs them is clearer written out), as
 * are duplicate keys and non-scalar keys. One document per file.
 *
 * The typed getters below report problems as
 *   FILE:LINE: FIELD: what is wrong
 * and return -1; absent optional fields leave *out untouched and return 0.
 *
 * Ownership: config_free() frees the document and its tree; nodes returned
 * by config_root() and cJSON lookups belong to the document.
 */
#ifndef AR_CONFIG_H
#define AR_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct config_doc;

int config_load(struct config_doc **out, const char *path, struct ar_err *err);
/* `name` labels errors (a file name or "<string>"). */
int config_parse(struct config_doc **out, const char *text, size_t n, const char *name, struct ar_err *err);
void config_free(struct config_doc *d);

const cJSON *config_root(const struct config_doc *d);
const char *config_name(const struct config_doc *d);
/* Line (1-based) where node starts, 0 when unknown. */
int config_line(const struct config_doc *d, const cJSON *node);

enum { CONFIG_OPTIONAL = 0, CONFIG_REQUIRED = 1 };

/* Typed member reads of object `obj`. `field` names it in messages. */
int config_get_str(const struct config_doc *d, const cJSON *obj, const char *field, int required,
		   const char **out, struct ar_err *err);
int config_get_num(const struct config_doc *d, const cJSON *obj, const char *field, int required,
		   double min, double max, double *out, struct ar_err *err);
int config_get_int(const struct config_doc *d, const cJSON *obj, const char *field, int required,
		   int64_t min, int64_t max, int64_t *out, struct ar_err *err);
int config_get_bool(const struct config_doc *d, const cJSON *obj, const char *field, int required,
		    bool *out, struct ar_err *err);
/* Sets err to "FILE:LINE: FIELD: msg" for node (or the object when node is NULL). */
int config_error(const struct config_doc *d, const cJSON *node, const char *field, struct ar_err *err,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
