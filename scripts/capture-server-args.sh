#!/bin/sh
# Records the argument lists a stock rsync client sends to a server over a remote shell,
# for the encoder's tests (rsyncd-rs/testdata/server-args.txt). The "remote shell" is a
# script that writes its argv and fails, so nothing is transferred. Each output line is
# PROTOCOL <tab> CLIENT OPTIONS AND PATHS <tab> SERVER ARGUMENTS (after `host rsync`),
# the arguments joined by spaces (none of the cases has a space or a quoted character).
# Usage: scripts/capture-server-args.sh > rsyncd-rs/testdata/server-args.txt
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mkdir src dst
echo hi > src/f
printf 'f\n' > ff
cat > rsh <<'SH'
#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done > "$CAPT_OUT"
exit 1
SH
chmod +x rsh
own=$(rsync --version | sed -n 's/.*protocol version \([0-9]*\).*/\1/p;1q')
echo "# $(rsync --version | head -1)"

cap() {
    rm -f out
    CAPT_OUT="$tmp/out" rsync "$@" -e "$tmp/rsh" >/dev/null 2>&1 || true
    [ -s out ] || { echo "no argument list for: $*" >&2; exit 1; }
    proto=$own
    for a in "$@"; do
        case $a in --protocol=*) proto=${a#--protocol=} ;; esac
    done
    printf '%s\t%s\t%s\n' "$proto" "$*" "$(tail -n +3 out | tr '\n' ' ' | sed 's/ $//')"
}

cap -artuz --delete src/ host:dst
cap -artuz -R --delete --timeout=100 src/ host:dst
cap -av src/ host:dst
cap -av host:src/ dst/
cap -ai src/ host:dst
cap -aii src/ host:dst
cap -ai host:src/ dst/
cap -aH --numeric-ids --partial --bwlimit=1000 --link-dest=/prev src/ host:dst
cap -rlptgoDc --checksum-choice=md5 --compress-choice=zstd --delete-after -n src/ host:dst
cap -rvv --copy-dest=/x --delete-delay --delete-excluded src/ host:dst
cap -r --compare-dest=/a --compare-dest=/b src/ host:dst
cap -az --compress-choice=zlib -L -k --skip-compress=gz host:src/ dst/
cap -rzz --compress-level=9 --max-delete=0 --min-size=10 --max-size=1M -b --suffix=.bak -xx -S -W -I -C src/ host:dst
cap -r --compress-choice=lz4 --compress-level=1 host:src/ dst
cap -r --compress-choice=none src/ host:dst
cap -rz --compress-choice=auto src/ host:dst
cap -d --delete src/ host:dst
cap --list-only host:src/
cap -rD --no-specials src/ host:dst
cap -r --specials src/ host:dst
cap -r --partial-dir=.p --delay-updates src/ host:dst
cap -r --delay-updates src/ host:dst
cap -r --append src/ host:dst
cap -r --append-verify src/ host:dst
cap -rt --modify-window=-1 src/ host:dst
cap -rt --modify-window=2 --ignore-errors --copy-unsafe-links --safe-links src/ host:dst
cap -rR --no-implied-dirs src/ host:dst
cap --protocol=29 -rR --no-implied-dirs src/ host:dst
cap --protocol=29 -rR --no-implied-dirs host:src/ dst
cap --protocol=29 -artuz --delete src/ host:dst
cap --protocol=28 -r --delete src/ host:dst
cap --protocol=27 -a src/ host:dst
cap --protocol=30 -r --delete src/ host:dst
cap -r --delete-before --force --super --size-only --stats --max-delete=5 src/ host:dst
cap -r --delete-during --remove-source-files --mkpath --preallocate --fsync -T /tmp --existing --ignore-existing src/ host:dst
cap -r --delete-missing-args host:src dst
cap -r --ignore-missing-args host:src dst
cap -r --ignore-missing-args src host:dst
cap -rb --backup-dir=/bk src/ host:dst
cap -rb src/ host:dst
cap -rUU -E --checksum-seed=7 -B 4096 src/ host:dst
cap -rAXX src/ host:dst
cap -rE src/ host:dst
cap -rOJKmyy src/ host:dst
cap -rOJKmyy host:src/ dst
cap -r --no-inc-recursive src/ host:dst
cap -r --usermap=0:1 --groupmap=0:1 src/ host:dst
cap -r --files-from=ff src/ host:dst
cap -r --files-from=ff host:src/ dst
cap -rt --no-relative --files-from=ff host:src/ dst
cap -r --files-from=host:/ff host:src/ dst
cap -r --files-from=:/ff --from0 host:src/ dst
cap -rt --copy-devices host:src/ dst
cap -rt --write-devices src/ host:dst
cap -r --inplace --sparse src/ host:dst
cap -r --inplace --sparse --no-W src/ host:dst
cap -r --remove-sent-files host:src/ dst
cap -r --timeout=0 --bwlimit=1m src/ host:dst
cap -rvvvvvvvvvvvv src/ host:dst
cap -rq src/ host:dst
cap -r --out-format=%n src/ host:dst
cap -rv --out-format=%n src/ host:dst
cap -r --out-format=%o src/ host:dst
