#!/bin/sh
# Runs the whole test suite. Installs what the tests need when it is missing: the stock
# rsync client (the end-to-end tests drive it and compare against `rsync --daemon`),
# xattr tools, and rpm tools for the packaging tests.
set -eu
cd "$(dirname "$0")/.."

need=""
command -v rsync >/dev/null 2>&1 || need="$need rsync"
command -v getfattr >/dev/null 2>&1 || need="$need attr"
command -v rpmbuild >/dev/null 2>&1 || need="$need rpm"
if [ -n "$need" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if command -v apt-get >/dev/null 2>&1; then
        $sudo apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need
    elif command -v dnf >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        $sudo dnf install -y $(echo "$need" | sed 's/\brpm\b/rpm-build/')
    elif command -v yum >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        $sudo yum install -y $(echo "$need" | sed 's/\brpm\b/rpm-build/')
    else
        echo "please install:$need" >&2
        exit 1
    fi
fi

cargo build --workspace --locked
cargo test --workspace --locked
