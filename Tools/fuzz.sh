#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of files from strangers (issue 24), with libFuzzer:
#
#   Tools/fuzz.sh TARGET|all SECONDS      e.g. Tools/fuzz.sh pickle 600; Tools/fuzz.sh all 10
#
# Builds Sources/pareidolia-fuzz (declared in Package.swift only when PAREIDOLIA_FUZZ=1) in release
# with -sanitize=fuzzer,address into its own scratch folder (PAREIDOLIA_FUZZ_BUILD, default
# .build-fuzz), then runs each target for SECONDS from three corpora: what earlier runs kept
# (.build-fuzz/corpus/TARGET, not committed), the committed seeds (Tests/Fuzz/corpus/TARGET) and
# the test fixtures that fit the target. Every input must finish within 1 s, allocate at most
# 512 MB at once and keep the process under 2 GB; a crash, a hang (a timeout its input repeats
# when run again) or a giant allocation stops the run, leaves the input in
# .build-fuzz/findings/TARGET/, and makes the exit status non-zero. One summary line per target
# (executions, coverage, exec/s) is printed at the end.
#
# A toolchain without libFuzzer: the script says so and exits 0 (CI runs it that way).
# PAREIDOLIA_FUZZ_JOBS=N runs N copies of a target at once (libFuzzer -fork).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(safetensors pickle zip legacy embedding bind json tokenizer prompt schedule infotext png trace)
which="${1:-}"
seconds="${2:-}"
if [[ -z "$which" || -z "$seconds" || ! "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: Tools/fuzz.sh TARGET|all SECONDS   (targets: ${targets[*]})" >&2
    exit 2
fi
if [[ "$which" == all ]]; then run=("${targets[@]}"); else run=("$which"); fi
for t in "${run[@]}"; do
    [[ " ${targets[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (targets: ${targets[*]})" >&2; exit 2; }
done

scratch="${PAREIDOLIA_FUZZ_BUILD:-.build-fuzz}"

# Does this toolchain link libFuzzer? (Swift on Linux ships it; Xcode's toolchain does not.)
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf '@_cdecl("LLVMFuzzerTestOneInput") public func f(_ d: UnsafePointer<UInt8>?, _ n: Int) -> Int32 { 0 }\n' > "$probe/probe.swift"
if ! swiftc -sanitize=fuzzer,address -use-ld=lld -parse-as-library "$probe/probe.swift" -o "$probe/probe" >"$probe/log" 2>&1; then
    echo "== fuzz: skipped, this Swift toolchain cannot build with -sanitize=fuzzer,address:"
    sed -n 1,3p "$probe/log"
    exit 0
fi

echo "== fuzz: building pareidolia-fuzz (release, fuzzer + address sanitizer) in $scratch"
# -enable-testing: the targets reach internal readers (@testable import). lld: gold fails on
# the sanitized link. -Xcc: coverage and bounds checks in our C too (CPNGText, the kernels).
PAREIDOLIA_FUZZ=1 swift build --scratch-path "$scratch" -c release --product pareidolia-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld \
    -Xcc -fsanitize=fuzzer-no-link,address
bin="$(PAREIDOLIA_FUZZ=1 swift build --scratch-path "$scratch" -c release --show-bin-path)/pareidolia-fuzz"

# The fixtures each target starts from (the committed seeds in Tests/Fuzz/corpus/ come too).
fixtures() {
    local f=Tests/Fixtures c=Tests/Fixtures/checkpoints
    case "$1" in
        safetensors) find "$f" -name '*.safetensors' -size -128k ;;
        zip) for p in "$c"/*.pt "$c"/*.bin "$c"/*.ckpt "$f"/pipeline/corajr.pt "$f"/pipeline/winniecat.bin; do
                 [[ -f "$p" && "$(head -c 2 "$p")" == PK ]] && echo "$p"; done ;;
        legacy|pickle) for p in "$c"/state_dict_legacy.pt "$c"/hostile_raw.pkl; do [[ -f "$p" ]] && echo "$p"; done ;;
        json) find "$f" -name '*.json' -size -32k ;;
        png) find "$f" -name '*.png' -size -64k ;;
        *) ;;
    esac
    return 0
}

# Seeds that need a leading byte: the embedding target's first byte picks the file extension.
embedding_seeds() {
    local out="$1" f=Tests/Fixtures c=Tests/Fixtures/checkpoints
    mkdir -p "$out"
    local p
    for p in "$c"/a1111_embedding.pt "$c"/a1111_embedding_param.pt "$f"/pipeline/corajr.pt; do
        [[ -f "$p" ]] && { printf '\x00'; cat "$p"; } > "$out/$(basename "$p")"; done
    for p in "$c"/diffusers_embedding.bin "$f"/pipeline/winniecat.bin; do
        [[ -f "$p" ]] && { printf '\x01'; cat "$p"; } > "$out/$(basename "$p")"; done
    p="$c"/kohya_embedding.safetensors
    [[ -f "$p" ]] && { printf '\x02'; cat "$p"; } > "$out/kohya_embedding.safetensors"
    return 0
}

max_len() {
    case "$1" in
        bind) echo 65536 ;;
        safetensors|zip|legacy|embedding|pickle|trace|png) echo 32768 ;;
        *) echo 4096 ;;
    esac
}

dict() {
    case "$1" in
        safetensors|bind|embedding) echo Tests/Fuzz/dict/safetensors.dict ;;
        pickle|legacy) echo Tests/Fuzz/dict/pickle.dict ;;
        zip) echo Tests/Fuzz/dict/zip.dict ;;
        json|trace) echo Tests/Fuzz/dict/json.dict ;;
        tokenizer|prompt|schedule) echo Tests/Fuzz/dict/prompt.dict ;;
        infotext) echo Tests/Fuzz/dict/infotext.dict ;;
        png) echo Tests/Fuzz/dict/png.dict ;;
    esac
}

status=0
summary=()
work="$scratch/fuzz-work"
rm -rf "$work"
mkdir -p "$work"
# Targets whose readers take paths write each input there: memory when the machine has it.
tmp="$work"
if [[ -d /dev/shm && -w /dev/shm ]]; then tmp="$(mktemp -d /dev/shm/pareidolia-fuzz.XXXXXX)"; fi
trap 'rm -rf "$probe"; [[ "$tmp" == /dev/shm/* ]] && rm -rf "$tmp"' EXIT
for t in "${run[@]}"; do
    kept="$scratch/corpus/$t" findings="$scratch/findings/$t" seeds="$work/seeds-$t"
    mkdir -p "$kept" "$findings" "$seeds"
    fixtures "$t" | while read -r p; do cp "$p" "$seeds/$(echo "$p" | tr / _)"; done
    [[ "$t" == embedding ]] && embedding_seeds "$seeds"
    corpora=("$kept" "$seeds")
    [[ -d "Tests/Fuzz/corpus/$t" ]] && corpora+=("Tests/Fuzz/corpus/$t")
    log="$work/$t.log" part="$work/$t.part.log"
    echo "== fuzz: $t for ${seconds}s"
    : >"$log"
    started=$SECONDS runs=0 result=ok repeated=""
    while (( SECONDS - started < seconds )); do
        # Leaks are not checked: a pickle may build a cycle (a list appended to itself), which
        # reference counting never frees; the reader stays bounded by the input's size. Swift's
        # own crash handler is off so that ASan and libFuzzer report the crash and keep its input.
        # An allocation's stack is kept 5 frames deep, not 30: unwinding and storing 30 took a
        # tenth of a bind run (711 inputs: 14.9 -> 11.6 s); enough to name where a freed or
        # overrun block came from, and a finding's input replays with the full depth.
        PAREIDOLIA_FUZZ_TARGET="$t" PAREIDOLIA_FUZZ_TMP="$tmp" ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=0:malloc_context_size=5" \
            SWIFT_BACKTRACE=enable=no "$bin" "${corpora[@]}" -dict="$(dict "$t")" -max_len="$(max_len "$t")" -timeout=1 \
            -rss_limit_mb=2048 -malloc_limit_mb=512 -max_total_time="$(( seconds - (SECONDS - started) ))" \
            -print_final_stats=1 -artifact_prefix="$findings/" ${PAREIDOLIA_FUZZ_JOBS:+-fork="$PAREIDOLIA_FUZZ_JOBS"} >"$part" 2>&1 &&
            fuzzed=0 || fuzzed=$?
        cat "$part" >>"$log"
        n="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$part" | grep -oE '[0-9]+$' || echo 0)"
        # With -fork the parent prints no final stats; its status lines (#N: …) count every job's runs.
        if [[ -n "${PAREIDOLIA_FUZZ_JOBS:-}" && "$n" == 0 ]]; then
            n="$(grep -oE '^#[0-9]+:' "$part" | tail -n 1 | grep -oE '[0-9]+' || echo 0)"
        fi
        runs=$(( runs + n ))
        (( fuzzed == 0 )) && break
        # The clock is the wall's: on a loaded machine a quick input can pass 1 s once. A timeout
        # whose input then runs in time three times over is no hang: note it and fuzz on.
        timeout="$(grep -o 'Test unit written to .*timeout-[0-9a-f]*' "$part" | sed 's/Test unit written to //' || true)"
        if [[ -n "$timeout" ]] && PAREIDOLIA_FUZZ_TARGET="$t" PAREIDOLIA_FUZZ_TMP="$tmp" ASAN_OPTIONS=detect_leaks=0 \
            SWIFT_BACKTRACE=enable=no "$bin" -timeout=1 -runs=3 "$timeout" >>"$log" 2>&1; then
            repeated+=" $timeout"
            continue
        fi
        result="FAILED (input in $findings/, log $log)"
        status=1
        tail -n 40 "$part"
        break
    done
    # The last status line: #N … cov: C ft: F … exec/s: E
    last="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
    cov="$(echo "$last" | grep -oE 'cov: [0-9]+' || true)" ft="$(echo "$last" | grep -oE 'ft: [0-9]+' || true)"
    rate=$(( runs / (SECONDS - started > 0 ? SECONDS - started : 1) ))
    summary+=("$(printf '%-12s %-6s %10s runs  %-10s %-10s %6s exec/s' "$t" "${result%% *}" "$runs" "$cov" "$ft" "$rate")")
    [[ "$result" == ok ]] || summary+=("             $result")
    [[ -z "$repeated" ]] || summary+=("             timeouts that did not repeat (machine load):$repeated")
done
echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
