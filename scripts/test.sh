#!/bin/sh
# Runs the whole test suite. Installs what the tests need when it is missing: the stock
# rsync client (the end-to-end tests drive it and compare against `rsync --daemon`),
# xattr and ACL tools (getfattr, getfacl, setfacl), curl (the agent's metrics endpoint is read with it), and for the
# packaging tests rpm tools and systemd-analyze (which verifies the units).
set -eu
cd "$(dirname "$0")/.."

need=""
command -v rsync >/dev/null 2>&1 || need="$need rsync"
command -v getfattr >/dev/null 2>&1 || need="$need attr"
command -v getfacl >/dev/null 2>&1 || need="$need acl"
command -v rpmbuild >/dev/null 2>&1 || need="$need rpm"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
command -v curl >/dev/null 2>&1 || need="$need curl"
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

# The end-to-end tests run rsync 3.2.7 as an old client (Debian 12's first stock rsync;
# 3.1.1 and 3.1.2 come from ../shared/tools). Where the stock client is a newer one and
# apt still offers a 3.2.7 package, unpack that package's binary where the tests look.
old327=/usr/local/lib/rsyncd-rs-tests/rsync-3.2.7
if [ -z "${RSYNC_3_2_7:-}" ] && [ ! -x "$old327" ] \
    && ! rsync --version | head -n 1 | grep -q 'version 3\.2\.7 ' \
    && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    find327() { apt-cache madison rsync | awk '$3 ~ /^3\.2\.7-/ { print $3; exit }'; }
    v=$(find327)
    [ -n "$v" ] || { $sudo apt-get update -qq && v=$(find327); }
    if [ -n "$v" ]; then
        tmp=$(mktemp -d)
        (cd "$tmp" && apt-get download -qq "rsync=$v" && dpkg-deb -x rsync_*.deb x)
        $sudo install -D -m 755 "$tmp/x/usr/bin/rsync" "$old327"
        rm -rf "$tmp"
    fi
fi

cargo build --workspace --locked
cargo test --workspace --locked
