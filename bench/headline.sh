#!/usr/bin/env bash
# The headline commands of issue 22, item 6, as a user types them (no flags), each with a cold cache of
# its own, timed with /usr/bin/time -v. Run it with the machine to itself: a second job on one of the
# two cores stretches every wall time.
#
#   bash bench/headline.sh [OUT_DIR]          # default: a fresh folder under /tmp
#   bash bench/headline.sh /tmp/h seed new    # only some of: seed new calibrate ablate
#
# Each command's stdout, stderr (the plain per-probe lines, then time's report) and --json land in
# OUT_DIR; a summary line per command (wall, peak RSS, exit code) is printed at the end.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$(mktemp -d /tmp/headline.XXXX)}"
shift || true
WHICH="${*:-seed new calibrate ablate}"
mkdir -p "$OUT"
CD="${COLLAPSE_DOCTOR:-collapse-doctor}"
summary=()

timed() {  # name, directory, command...
    local name="$1" dir="$2"
    shift 2
    echo "== $name: $* (in $dir)"
    (cd "$dir" && XDG_CACHE_HOME="$OUT/$name.xdg" /usr/bin/time -v "$@" >"$OUT/$name.out" 2>"$OUT/$name.err")
    local rc=$?
    local wall rss
    wall=$(grep "Elapsed (wall clock)" "$OUT/$name.err" | awk '{print $NF}')
    rss=$(grep "Maximum resident set size" "$OUT/$name.err" | awk '{printf "%.0f MB", $NF/1024}')
    summary+=("$name: wall $wall, peak RSS $rss, exit $rc")
    tail -n 3 "$OUT/$name.out"
}

for what in $WHICH; do
    case "$what" in
    seed)
        python "$ROOT/fixtures/git_history.py" "$OUT/seed-repo" --history seed >/dev/null
        timed seed "$OUT/seed-repo" "$CD" bisect --from HEAD~5 --json "$OUT/seed.json"
        ;;
    new)
        python "$ROOT/fixtures/git_history.py" "$OUT/new-repo" --history new >/dev/null
        n=$(git -C "$OUT/new-repo" rev-list --count HEAD)
        timed new "$OUT/new-repo" "$CD" bisect --from "HEAD~$((n - 1))" --json "$OUT/new.json"
        ;;
    calibrate)
        timed calibrate "$ROOT" "$CD" calibrate --good fixtures/seed_old_2a50f2d.yaml \
            --bad fixtures/seed_new_main.yaml --json "$OUT/calibrate.json" --html "$OUT/calibrate.html"
        ;;
    ablate)
        timed ablate "$ROOT" "$CD" ablate fixtures/seed_new_main.yaml --json "$OUT/ablate.json" \
            --html "$OUT/ablate.html"
        ;;
    *) echo "unknown: $what (seed new calibrate ablate)" >&2; exit 2 ;;
    esac
done
echo "results in $OUT"
printf '%s\n' "${summary[@]}"
