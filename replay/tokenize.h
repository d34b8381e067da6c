/* tokenize: exact token counts from a running server's tokenize endpoint.
 *
 * `agentreplay gen --tokenizer-url URL` sizes sessions with the served
 * model's own tokenizer. Two servers are understood, both at POST /tokenize:
 *   llama.cpp llama-server  {"content": TEXT, "add_special": false, "parse_special": false}
 *                           -> {"tokens": [ids...]}
 *   vLLM                    {"prompt": TEXT, "add_special_tokens": false}
 *                           -> {"count": N, "max_model_len": M, "tokens": [...]}
 * The first request tries the llama-server shape; a 4xx answer, or an empty
 * token list for non-empty text (llama-server ignores bodies without
 * "content", vLLM rejects bodies without "prompt"), switches to the vLLM
 * shape, which is then used for the connection's lifetime.
 *
 * URL: the server's base URL ("http://host:8080", a trailing "/v1" is
 * dropped) or the full endpoint ending in "/tokenize".
 *
 * Ownership: tokenize_open() returns a handle the caller frees with
 * tokenize_close() (NULL is a no-op). One libcurl easy handle, reused (keep-
 * alive) for every count. Errors name the endpoint and curl's error text.
 */
#ifndef AR_TOKENIZE_H
#define AR_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct tokenize;

/* Prepares a client for url; does not connect (see tokenize_count). */
int tokenize_open(struct tokenize **out, const char *url, struct ar_err *err);
void tokenize_close(struct tokenize *t);
/* Tokens of text[0..n) without special tokens; -1 with err set (AR_ENET when
 * the server cannot be reached, AR_EBACKEND when it answers unexpectedly).
 * The signature fits struct gen_tokenizer's count (ud = the handle). */
int64_t tokenize_count(void *t, const char *text, size_t n, struct ar_err *err);
/* The endpoint URL requests go to. */
const char *tokenize_endpoint(const struct tokenize *t);
/* "llama-server", "vllm", or "unknown" before the first successful count. */
const char *tokenize_flavour(const struct tokenize *t);

#endif
