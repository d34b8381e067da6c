#!/usr/bin/env python3
"""Writes a deterministic coding-agent session that climbs to a given depth
(estimated tokens), for the real tier: turn 0 is a user request, each later
turn appends the result of the previous turn's read_file call (~source code);
the last turn appends only a short test result, as an agent's final check
does, so the deepest turn's warm prefill is small.

Usage: make-deep-trace.py OUT DEPTH_TOKENS TURNS [OUTPUT_TOKENS]
"""
import json, random, sys

out, depth, turns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
output_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 24
rnd = random.Random(42)
words = ("buffer length parse token value count index error result state config reader writer "
         "session request stream header client server cache prefix decode prefill memory").split()

def source(tokens):
    # about 10 tokens per line of C
    lines = []
    for i in range(max(1, tokens // 10)):
        a, b, c = rnd.sample(words, 3)
        lines.append(f"    {a}_{b} = {c}({a}, {rnd.randint(0, 999)});")
    return "\n".join(lines)

per_turn = depth // (turns - 1)
with open(out, "w") as f:
    f.write(json.dumps({"type": "session", "format": "agentreplay-trace/1", "id": "deep",
                        "source": {"kind": "generator", "file": "tests/real/make-deep-trace.py"},
                        "system": "You are a coding agent working in a C repository. " * 8}) + "\n")
    for i in range(turns):
        if i == 0:
            append = [{"role": "user", "content": "Find why the parser test fails and fix it."}]
        elif i == turns - 1:
            append = [{"role": "tool", "tool_call_id": f"c{i-1}", "content": "make test: 6 of 6 tests passed"}]
        else:
            append = [{"role": "tool", "tool_call_id": f"c{i-1}", "content": source(per_turn)}]
        f.write(json.dumps({"type": "turn", "i": i, "t": i * 3.0, "append": append,
                            "response": {"content": "Reading the next file.",
                                         "tool_calls": [{"id": f"c{i}", "name": "read_file",
                                                         "arguments": json.dumps({"path": f"src/f{i}.c"})}],
                                         "output_tokens": output_tokens}}) + "\n")
