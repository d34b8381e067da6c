#include "synth.h"

#include "rng.h"

/* Short, common words: each " word" is a single token in the BPE
 * vocabularies agentreplay targets. */
static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are", "as", "with",
	"his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what",
	"all", "were", "we", "when", "your", "can", "said", "there", "use", "an", "each", "which", "she", "do",
	"how", "their", "if", "will", "up", "other", "about", "out", "many", "then", "them", "these", "so", "some",
	"her", "would", "make", "like", "him", "into", "time", "has", "look", "two", "more", "write", "go", "see",
	"number", "no", "way", "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil",
	"its", "now", "find", "long", "down", "day", "did", "get", "come", "made", "may", "part", "over", "new",
	"sound", "take", "only", "little", "work", "know", "place", "year", "live", "me", "back", "give", "most",
	"very", "after", "thing", "our", "just", "name", "good", "man", "think", "say", "great", "where", "help",
	"much", "before", "line", "right", "too", "mean", "old", "any", "same", "tell", "boy", "follow",
	"came", "want", "show", "also", "around", "form", "three", "small", "set", "put", "end", "does", "another",
	"well", "large", "must", "big", "even", "such", "turn", "here", "why", "ask", "went", "men",
	"read", "need", "land", "home", "us", "move", "try", "kind", "hand", "again", "change", "off",
	"play", "spell", "air", "away", "animal", "house", "point", "page", "letter", "mother", "answer", "found",
	"study", "still", "learn", "should", "world", "high", "every", "near", "add", "food", "own",
	"below", "plant", "last", "school", "father", "keep", "tree", "never", "start", "city",
	"earth", "eye", "light", "head", "under", "story", "saw", "left", "few", "while", "along",
	"might", "close", "seem", "next", "hard", "open", "begin", "life", "always",
	"those", "both", "paper", "got", "group", "often", "run", "until", "children",
	"side", "feet", "car", "mile", "night", "walk", "white", "sea", "began", "grow", "took", "river", "four",
	"carry", "state", "once", "book", "hear", "stop", "second", "later",
};

#define NWORDS (sizeof words / sizeof words[0])

static int emit(struct buf *out, struct rng *r, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		if (buf_putc(out, ' ') < 0 || buf_puts(out, words[rng_below(r, NWORDS)]) < 0)
			return -1;
	}
	return 0;
}

int synth_block(struct buf *out, int64_t block, int64_t block_tokens, int64_t tokens)
{
	struct rng r;
	rng_seed(&r, (uint64_t)block * 0x9E3779B97F4A7C15ULL ^ (uint64_t)block_tokens);
	return emit(out, &r, tokens < block_tokens ? tokens : block_tokens);
}

int synth_filler(struct buf *out, const char *session, int64_t turn, int64_t index, int64_t n)
{
	struct rng r;
	rng_seed(&r, rng_hash(session ? session : "") ^ ((uint64_t)turn << 20) ^ (uint64_t)index ^ 0xF111E5ULL);
	return emit(out, &r, n);
}

int synth_expand(struct buf *out, const struct tr_synth *s, const char *session, int64_t turn, int64_t index)
{
	int64_t left = s->tokens;
	for (size_t k = 0; k < s->n_blocks && left > 0; k++) {
		int64_t take = left < s->block_tokens ? left : s->block_tokens;
		if (synth_block(out, s->blocks[k], s->block_tokens, take) < 0)
			return -1;
		left -= take;
	}
	if (left > 0)
		return synth_filler(out, session, turn, index, left);
	return 0;
}
