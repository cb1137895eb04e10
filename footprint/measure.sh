#!/usr/bin/env bash
# Footprint of the C library against its goals and against the floor (footprint/README.md).
#
#   footprint/measure.sh            # the table (about 4 release builds with fat LTO)
#   footprint/measure.sh --bloat    # and, after it, cargo-bloat's breakdown by crate
#
# Builds in release (the root Cargo.toml's profile: fat LTO, one codegen unit, opt-level "s", unwinding kept)
# the floor (footprint/floor) and threadhost-capi in each feature configuration, strips a copy
# of each libthreadhost.so and prints a Markdown table. Honours CARGO_TARGET_DIR (the target
# directory is asked of cargo); the stripped copies are left in <target>/footprint/.
set -euo pipefail

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "$0"
}

bloat=0
for arg in "$@"; do
    case "$arg" in
        --bloat) bloat=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "measure.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

# A relative CARGO_TARGET_DIR means the caller's directory: make it absolute before moving.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    case "$CARGO_TARGET_DIR" in
        /*) ;;
        *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;;
    esac
    export CARGO_TARGET_DIR
fi

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
floor_dir="$here/floor"
cd "$root"

# The C library's features, measured one at a time over the minimal set. (`listeners` is
# the Rust library's only: no C function uses it, and `systemd`, which is a listener, turns
# it on.)
features=(termination systemd env queue periodic)
# Goals in bytes: the minimal set, and every other feature set.
goal_minimal=$((450 * 1024))
goal_any=$((600 * 1024))

# The target directory cargo uses for a manifest (CARGO_TARGET_DIR, config, or <ws>/target).
target_dir() {
    cargo metadata --format-version 1 --no-deps --manifest-path "$1" |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4
}

root_target="$(target_dir "$root/Cargo.toml")"
floor_target="$(target_dir "$floor_dir/Cargo.toml")"
out="$root_target/footprint"
mkdir -p "$out"

echo "# threadhost footprint"
echo
echo '```'
rustc --version
cargo --version
cc --version | head -n 1
strip --version | head -n 1
echo "host: $(uname -srm)"
echo "target dir: $root_target (floor: $floor_target)"
echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo '```'
echo

size_of() { stat -c %s "$1"; }

# Copies a freshly built library to $out/<name>.so, strips the copy and prints its size.
# The unstripped copy stays beside it (<name>.unstripped.so) for symbol inspection.
keep_stripped() { # <built .so> <name>
    cp "$1" "$out/$2.unstripped.so"
    cp "$1" "$out/$2.so"
    strip "$out/$2.so"
    size_of "$out/$2.so"
}

# Builds threadhost-capi with the given cargo feature flags; status 3 if a requested
# feature does not exist (yet), any other failure stops the script.
build_capi() { # <cargo feature flags...>
    local log="$out/build.log"
    if cargo build --release -p threadhost-capi "$@" 2>"$log"; then
        return 0
    fi
    if grep -q "does not contain th.* feature" "$log"; then
        return 3
    fi
    cat "$log" >&2
    echo "measure.sh: cargo build --release -p threadhost-capi $* failed" >&2
    exit 1
}

start=$SECONDS
echo "building the floor ..." >&2
(cd "$floor_dir" && cargo build --release --locked -q)
floor_bytes="$(keep_stripped "$floor_target/release/libthreadhost_floor.so" floor)"

# rows: "configuration|bytes|goal" (bytes "n/a" for a missing feature).
rows=("floor (\`footprint/floor\`)|$floor_bytes|")

measure() { # <configuration> <name> <goal> <cargo feature flags...>
    local label="$1" name="$2" goal="$3"
    shift 3
    echo "building threadhost-capi: $label ..." >&2
    local status=0
    build_capi "$@" || status=$?
    if [ "$status" -eq 3 ]; then
        rows+=("$label|n/a|$goal")
        return
    fi
    rows+=("$label|$(keep_stripped "$root_target/release/libthreadhost.so" "$name")|$goal")
}

measure "minimal (\`--no-default-features\`)" minimal "$goal_minimal" --no-default-features
for f in "${features[@]}"; do
    measure "minimal + \`$f\`" "minimal+$f" "$goal_any" --no-default-features --features "$f"
done
# `http` is off by default: measured for what it adds, with no goal of its own.
measure "minimal + \`http\` (off by default)" "minimal+http" "" --no-default-features --features http
# Last, so that release/ holds the full build for the archive, the C program and --bloat.
measure "full (default features)" full "$goal_any"
cp "$root_target/release/libthreadhost.a" "$out/full.a"

kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }
# 1234567 -> 1,234,567
commas() { printf '%s' "$1" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta'; }

echo "| configuration | stripped bytes | KiB | ratio to the floor | goal | met |"
echo "| --- | ---: | ---: | ---: | --- | --- |"
for row in "${rows[@]}"; do
    IFS='|' read -r label bytes goal <<<"$row"
    if [ "$bytes" = "n/a" ]; then
        echo "| $label | n/a (feature missing) | | | ≤ $((goal / 1024)) KiB | |"
        continue
    fi
    ratio="$(awk -v b="$bytes" -v f="$floor_bytes" 'BEGIN { printf "%.2f×", b / f }')"
    if [ -z "$goal" ]; then
        goal_text="—" met="—"
    else
        goal_text="≤ $((goal / 1024)) KiB"
        if [ "$bytes" -le "$goal" ]; then met="yes"; else met="**no** (+$(kib $((bytes - goal))) KiB)"; fi
    fi
    echo "| $label | $(commas "$bytes") | $(kib "$bytes") | $ratio | $goal_text | $met |"
done
echo

# The archive of the full build, and a static C program linked against it.
cp "$out/full.a" "$out/full.debugstripped.a"
strip --strip-debug "$out/full.debugstripped.a"
cc -std=c99 -Iinclude capi/examples/c/worker.c "$out/full.a" \
    -lpthread -ldl -lm -Wl,--gc-sections -o "$out/worker-static"
strip "$out/worker-static"
worker_bytes="$(size_of "$out/worker-static")"
echo "| full build, other artifacts | bytes | KiB |"
echo "| --- | ---: | ---: |"
a_bytes="$(size_of "$out/full.a")"
a_dbg_bytes="$(size_of "$out/full.debugstripped.a")"
echo "| \`libthreadhost.a\` | $(commas "$a_bytes") | $(kib "$a_bytes") |"
echo "| \`libthreadhost.a\` after \`strip --strip-debug\` | $(commas "$a_dbg_bytes") | $(kib "$a_dbg_bytes") |"
echo "| \`capi/examples/c/worker.c\` static (\`-Wl,--gc-sections\`), stripped | $(commas "$worker_bytes") | $(kib "$worker_bytes") |"
echo

# Code size by crate from the symbol table of an unstripped library, for when cargo-bloat is
# not installed: a symbol's crate is the first path segment of its demangled name (`<A as B>`
# counts for A, `<str as B>` for B). Rougher than cargo-bloat, which also reads the mangled names' crate hashes.
nm_by_crate() { # <unstripped .so>
    nm -S --size-sort -C --defined-only --radix=d "$1" |
        awk '$3 ~ /^[tTwW]$/ {
                 name = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name)
                 while (sub(/^(<|&|mut |dyn |\[|\(|\*const |\*mut )/, "", name)) {}
                 if (index(name, "::") == 0) crate = "[C or unmangled]"
                 else {
                     crate = substr(name, 1, index(name, "::") - 1)
                     # <str as core::fmt::Display>: a primitive type, counted for its trait.
                     if (index(crate, " as ") > 0) crate = substr(crate, index(crate, " as ") + 4)
                 }
                 size[crate] += $2; total += $2
             }
             END {
                 for (c in size) printf "%10.1f KiB %5.1f%%  %s\n", size[c] / 1024, 100 * size[c] / total, c
                 printf "%10.1f KiB 100.0%%  (all code symbols)\n", total / 1024
             }' | sort -rn | head -n 16
}

bloat_failed() {
    echo '```'
    cat "$out/bloat.log" >&2
    echo "measure.sh: cargo bloat failed" >&2
    exit 1
}

if [ "$bloat" -eq 1 ]; then
    if cargo bloat --version >/dev/null 2>&1; then
        echo "## Code by crate (\`cargo bloat\` $(cargo bloat --version 2>/dev/null | head -n 1))"
        echo
        echo "cargo-bloat builds with symbols kept (a rebuild), so its file sizes are unstripped."
        echo
        for args in "--crates -n 15" "--crates --split-std -n 15"; do
            echo "### full: \`cargo bloat --release -p threadhost-capi $args\`"
            echo
            echo '```'
            # shellcheck disable=SC2086 # $args is a word list on purpose
            cargo bloat --release -p threadhost-capi $args 2>"$out/bloat.log" || bloat_failed
            echo '```'
            echo
            echo "### floor: \`cargo bloat --release $args\` (in footprint/floor)"
            echo
            echo '```'
            # shellcheck disable=SC2086
            (cd "$floor_dir" && cargo bloat --release --locked $args) 2>"$out/bloat.log" || bloat_failed
            echo '```'
            echo
        done
    else
        echo "## Code by crate (\`nm\`: cargo-bloat is not installed)"
        echo
        for name in full floor; do
            echo "### $name"
            echo
            echo '```'
            nm_by_crate "$out/$name.unstripped.so"
            echo '```'
            echo
        done
    fi
fi

echo "measured in $((SECONDS - start)) s; stripped copies in $out" >&2
