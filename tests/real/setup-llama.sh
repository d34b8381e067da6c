#!/usr/bin/env bash
# setup-llama.sh — provide a real llama.cpp `llama-server` + `llama-tokenize` and random-weight
# GGUF models with a real tokenizer, for agentreplay's `real` test tier.  Idempotent and cached.
#
# apt: cmake g++ make git nodejs npm python3 python3-numpy ca-certificates
#      (python3-numpy is installed by this script when missing and running as root;
#       python3-yaml is optional, a stub is used when it is absent)
#
# Everything lives in ${AR_CACHE_DIR:-$HOME/.cache/agentreplay} (never in the source tree):
#   npm/                      node-llama-cpp@3.21.1 (only for its llama.cpp git bundle)
#   llama/src                 llama.cpp v0.4.0 source (cloned from the bundle)
#   llama/build               CMake build tree
#   llama/bin                 llama-server, llama-tokenize (statically linked against llama/ggml)
#   llama/models              tiny.gguf, micro.gguf (random weights, Qwen2 BPE tokenizer + ChatML)
#
# stdout: only KEY=VALUE lines (eval-able):  LLAMA_BIN_DIR LLAMA_SERVER LLAMA_TOKENIZE
#         LLAMA_SRC LLAMA_VOCAB_DIR LLAMA_MODELS_DIR LLAMA_MODEL_TINY LLAMA_MODEL_MICRO
# stderr: progress and errors.
#
# Usage: setup-llama.sh [--check] [--force] [--quiet]
#   --check   after setup, start llama-server on tiny.gguf, wait for /health, run one /completion
#   --force   rebuild binaries and models even if the stamps match
#   --quiet   less progress output
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.21.1
LLAMA_COMMIT=80fb11ac73e66d89eae2c6a91d8a77428fa733ed   # llama.cpp v0.4.0 (squashed) in that package
SCRIPT_REV=1
JOBS=${AR_BUILD_JOBS:-2}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAKE_GGUF_PY="$SCRIPT_DIR/make-random-gguf.py"
PY=${AR_PYTHON:-/usr/bin/python3}

CACHE=${AR_CACHE_DIR:-$HOME/.cache/agentreplay}
NPM_DIR="$CACHE/npm"
LL="$CACHE/llama"
SRC="$LL/src"
BUILD="$LL/build"
BIN="$LL/bin"
MODELS="$LL/models"
LOGS="$LL/logs"
BUNDLE="$NPM_DIR/node_modules/node-llama-cpp/llama/gitRelease.bundle"

CMAKE_FLAGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF
    -DGGML_NATIVE=ON
    -DGGML_CCACHE=OFF
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_RPC=OFF
    -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_COMMON=ON
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_TOOLS_INSTALL=OFF
)
TARGETS=(llama-server llama-tokenize)

DO_CHECK=0 FORCE=0 QUIET=0
for a in "$@"; do
    case "$a" in
        --check) DO_CHECK=1 ;;
        --force) FORCE=1 ;;
        --quiet) QUIET=1 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "setup-llama.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done

log()  { [ "$QUIET" = 1 ] || echo "setup-llama: $*" >&2; }
die()  { echo "setup-llama: ERROR: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "required command '$1' not found (apt-get install -y $2)"; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# The binaries are built with -march=native: tie the stamp to this CPU's feature flags, so a cache
# restored onto a different CPU rebuilds instead of dying with SIGILL.
cpu_fingerprint() {
    { grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m; } | tr ' ' '\n' | sort | sha256sum | cut -c1-16
}

bin_stamp_expected() {
    printf 'rev=%s\nnode-llama-cpp=%s\ncommit=%s\ncpu=%s\ncxx=%s\nflags=%s\n' \
        "$SCRIPT_REV" "$NODE_LLAMA_CPP_VERSION" "$LLAMA_COMMIT" "$(cpu_fingerprint)" \
        "$(c++ --version 2>/dev/null | head -1)" "${CMAKE_FLAGS[*]}"
}

model_stamp_expected() {
    printf 'rev=%s\ncommit=%s\nmaker=%s\n' "$SCRIPT_REV" "$LLAMA_COMMIT" "$(sha256_of "$MAKE_GGUF_PY")"
}

print_env() {
    cat <<EOF
LLAMA_BIN_DIR=$BIN
LLAMA_SERVER=$BIN/llama-server
LLAMA_TOKENIZE=$BIN/llama-tokenize
LLAMA_SRC=$SRC
LLAMA_VOCAB_DIR=$SRC/models
LLAMA_MODELS_DIR=$MODELS
LLAMA_MODEL_TINY=$MODELS/tiny.gguf
LLAMA_MODEL_MICRO=$MODELS/micro.gguf
EOF
}

bins_ok() {
    [ -x "$BIN/llama-server" ] && [ -x "$BIN/llama-tokenize" ] && [ -f "$LL/bin.stamp" ] &&
        [ "$(cat "$LL/bin.stamp")" = "$(bin_stamp_expected)" ] &&
        [ -f "$SRC/models/ggml-vocab-qwen2.gguf" ] && [ -f "$SRC/models/ggml-vocab-llama-bpe.gguf" ]
}

models_ok() {
    [ -s "$MODELS/tiny.gguf" ] && [ -s "$MODELS/micro.gguf" ] && [ -f "$MODELS/models.stamp" ] &&
        [ "$(cat "$MODELS/models.stamp")" = "$(model_stamp_expected)" ]
}

# ---------------------------------------------------------------------------------------------
# steps

step_npm() {
    if [ -f "$BUNDLE" ] && [ "$(node -p "require('$NPM_DIR/node_modules/node-llama-cpp/package.json').version" 2>/dev/null)" = "$NODE_LLAMA_CPP_VERSION" ]; then
        log "node-llama-cpp@$NODE_LLAMA_CPP_VERSION already in $NPM_DIR"
        return
    fi
    need node nodejs; need npm npm
    mkdir -p "$NPM_DIR"
    # a package.json of its own, so npm never walks up into some parent project
    [ -f "$NPM_DIR/package.json" ] || echo '{"name":"agentreplay-llama-cache","private":true}' >"$NPM_DIR/package.json"
    log "npm install node-llama-cpp@$NODE_LLAMA_CPP_VERSION into $NPM_DIR ..."
    local t0=$SECONDS
    (cd "$NPM_DIR" && npm i -E --ignore-scripts --no-audit --no-fund --loglevel=error \
        "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >"$LOGS/npm.log" 2>&1) ||
        { tail -20 "$LOGS/npm.log" >&2; die "npm install node-llama-cpp@$NODE_LLAMA_CPP_VERSION failed (log: $LOGS/npm.log)"; }
    [ -f "$BUNDLE" ] || die "node-llama-cpp@$NODE_LLAMA_CPP_VERSION has no git bundle at $BUNDLE"
    log "npm install took $((SECONDS - t0)) s"
}

step_clone() {
    if [ -d "$SRC/.git" ] && [ "$(git -C "$SRC" rev-parse HEAD 2>/dev/null)" = "$LLAMA_COMMIT" ] &&
        git -C "$SRC" diff --quiet HEAD 2>/dev/null; then
        log "llama.cpp source at $LLAMA_COMMIT already in $SRC"
        return
    fi
    need git git
    git bundle list-heads "$BUNDLE" 2>/dev/null | grep -q "^$LLAMA_COMMIT " ||
        die "git bundle $BUNDLE is unreadable or does not carry commit $LLAMA_COMMIT"
    rm -rf "$SRC" "$SRC.tmp"
    log "cloning llama.cpp from $BUNDLE ..."
    git -c advice.detachedHead=false clone -q "$BUNDLE" "$SRC.tmp" >"$LOGS/clone.log" 2>&1 ||
        { cat "$LOGS/clone.log" >&2; die "git clone of $BUNDLE failed"; }
    git -C "$SRC.tmp" -c advice.detachedHead=false checkout -q "$LLAMA_COMMIT" 2>>"$LOGS/clone.log" ||
        die "commit $LLAMA_COMMIT not in bundle (is node-llama-cpp really $NODE_LLAMA_CPP_VERSION?)"
    mv "$SRC.tmp" "$SRC"
}

step_build() {
    need cmake cmake; need c++ g++; need make make
    mkdir -p "$BUILD" "$BIN"
    local t0=$SECONDS
    log "configuring (cmake ${CMAKE_FLAGS[*]}) ..."
    cmake -S "$SRC" -B "$BUILD" "${CMAKE_FLAGS[@]}" >"$LOGS/cmake-configure.log" 2>&1 ||
        { tail -30 "$LOGS/cmake-configure.log" >&2; die "cmake configure failed (log: $LOGS/cmake-configure.log)"; }
    local t1=$SECONDS
    log "building ${TARGETS[*]} with -j$JOBS (about 10 min on 2 cores; log: $LOGS/cmake-build.log) ..."
    cmake --build "$BUILD" --config Release -j "$JOBS" --target "${TARGETS[@]}" >"$LOGS/cmake-build.log" 2>&1 ||
        { grep -E 'error|Error' "$LOGS/cmake-build.log" | head -20 >&2; tail -10 "$LOGS/cmake-build.log" >&2
          die "build failed (log: $LOGS/cmake-build.log)"; }
    local t2=$SECONDS
    local t
    for t in "${TARGETS[@]}"; do
        [ -x "$BUILD/bin/$t" ] || die "build finished but $BUILD/bin/$t is missing"
        install -m 0755 "$BUILD/bin/$t" "$BIN/$t.new" && mv -f "$BIN/$t.new" "$BIN/$t"
    done
    # self-contained: no libllama/libggml shared objects may be needed
    if ldd "$BIN/llama-server" 2>/dev/null | grep -qE 'libllama|libggml|not found'; then
        ldd "$BIN/llama-server" >&2; die "llama-server is not self-contained"
    fi
    "$BIN/llama-server" --version >"$LOGS/version.txt" 2>&1 || die "$BIN/llama-server --version failed"
    printf 'configure_s=%d\nbuild_s=%d\ntotal_s=%d\njobs=%s\ndate=%s\n' \
        "$((t1 - t0))" "$((t2 - t1))" "$((t2 - t0))" "$JOBS" "$(date -u +%FT%TZ)" >"$LL/build-time.txt"
    log "build took $((t2 - t0)) s (configure $((t1 - t0)) s, compile+link $((t2 - t1)) s, -j$JOBS)"
    echo "BUILD_SECONDS=$((t2 - t0))" >&2
}

step_python() {
    [ -x "$PY" ] || die "$PY not found (apt-get install -y python3)"
    if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$PY" = /usr/bin/python3 ]; then
            log "installing python3-numpy with apt-get ..."
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-numpy >"$LOGS/apt.log" 2>&1 ||
                { DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$LOGS/apt.log" 2>&1 &&
                  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-numpy >>"$LOGS/apt.log" 2>&1; } ||
                { tail -20 "$LOGS/apt.log" >&2; die "apt-get install python3-numpy failed"; }
        else
            die "numpy is missing for $PY; run: apt-get install -y python3-numpy"
        fi
        "$PY" -c 'import numpy' >/dev/null 2>&1 || die "numpy still not importable by $PY"
    fi
}

step_models() {
    [ -f "$MAKE_GGUF_PY" ] || die "$MAKE_GGUF_PY not found"
    step_python
    mkdir -p "$MODELS"
    rm -f "$MODELS/models.stamp"
    local vocab="$SRC/models/ggml-vocab-qwen2.gguf"
    [ -f "$vocab" ] || die "vocab file $vocab missing from the llama.cpp tree"
    local t0=$SECONDS
    #            name  n_embd layers heads kv ff
    local spec
    for spec in "tiny 128 8 2 1 512" "micro 128 4 2 1 384"; do
        set -- $spec
        log "writing $MODELS/$1.gguf (n_embd $2, layers $3, heads $4/$5, ff $6, F16, random) ..."
        PYTHONPATH="$SRC/gguf-py" "$PY" "$MAKE_GGUF_PY" --vocab "$vocab" --out "$MODELS/$1.gguf.tmp" \
            --name "agentreplay-random-$1" --n-embd "$2" --n-layer "$3" --n-head "$4" --n-head-kv "$5" \
            --n-ff "$6" --ctx 131072 --seed 1234 >"$LOGS/make-$1.log" 2>&1 ||
            { tail -20 "$LOGS/make-$1.log" >&2; die "writing $1.gguf failed (log: $LOGS/make-$1.log)"; }
        mv -f "$MODELS/$1.gguf.tmp" "$MODELS/$1.gguf"
    done
    model_stamp_expected >"$MODELS/models.stamp"
    log "models written in $((SECONDS - t0)) s"
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

SERVER_PID=
cleanup_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        local i
        for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}

step_check() {
    local port; port=$(free_port) || die "could not find a free port"
    local slog="$LOGS/check-server.log"
    log "check: llama-server -m tiny.gguf -c 8192 --port $port ..."
    trap cleanup_server EXIT
    "$BIN/llama-server" -m "$MODELS/tiny.gguf" -c 8192 --host 127.0.0.1 --port "$port" -t 2 \
        >"$slog" 2>&1 &
    SERVER_PID=$!
    local t0=$SECONDS
    "$PY" - "$port" "$SERVER_PID" <<'PYEOF' || { cleanup_server; tail -25 "$slog" >&2; die "smoke check failed (server log: $slog)"; }
import json, os, sys, time, urllib.request, urllib.error
port, pid = int(sys.argv[1]), int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
deadline = time.time() + 60
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("llama-server exited during startup")
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as r:
            if r.status == 200:
                break
    except (urllib.error.URLError, ConnectionError, OSError):
        pass
    if time.time() > deadline:
        sys.exit("no /health 200 within 60 s")
    time.sleep(0.1)
t = time.time()
body = json.dumps({"prompt": "Hello world, this is agentreplay.", "n_predict": 4,
                   "cache_prompt": True, "temperature": 0}).encode()
req = urllib.request.Request(base + "/completion", data=body, headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    resp = json.load(r)
tm = resp.get("timings")
if not isinstance(tm, dict) or "prompt_n" not in tm or "predicted_n" not in tm:
    sys.exit(f"/completion answered without timings: {json.dumps(resp)[:500]}")
if tm["predicted_n"] != 4:
    sys.exit(f"expected 4 predicted tokens, got {tm['predicted_n']}")
print(f"setup-llama: check OK: /completion in {time.time()-t:.3f} s, prompt_n={tm['prompt_n']} "
      f"predicted_n={tm['predicted_n']} predicted_per_second={tm.get('predicted_per_second', 0):.0f}",
      file=sys.stderr)
PYEOF
    cleanup_server
    trap - EXIT
    log "check passed ($((SECONDS - t0)) s incl. startup)"
}

# ---------------------------------------------------------------------------------------------

mkdir -p "$CACHE" "$LL" "$LOGS" || die "cannot create cache dir $CACHE"
command -v flock >/dev/null 2>&1 || die "flock not found (apt-get install -y util-linux)"
exec 9>"$LL/.setup.lock"
flock -w 3600 9 || die "timed out waiting for the lock $LL/.setup.lock"

if [ "$FORCE" = 0 ] && bins_ok; then
    log "binaries up to date in $BIN"
else
    step_npm
    step_clone
    rm -f "$LL/bin.stamp"
    step_build
    bin_stamp_expected >"$LL/bin.stamp"
fi

if [ "$FORCE" = 0 ] && models_ok; then
    log "models up to date in $MODELS"
else
    [ -f "$SRC/gguf-py/gguf/__init__.py" ] || { step_npm; step_clone; }
    step_models
fi

[ "$DO_CHECK" = 1 ] && step_check
[ "$QUIET" = 1 ] || { [ -f "$LL/build-time.txt" ] && sed 's/^/setup-llama: last build: /' "$LL/build-time.txt" >&2; }
print_env
