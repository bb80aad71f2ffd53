#!/usr/bin/env bash
# Runs the README's set-up commands (the ```sh block under "Set up and try it",
# exactly as written) as an unprivileged user, on a fresh clone of this
# checkout's HEAD: what a newcomer who is not root gets.
#
#   sudo scripts/newcomer.sh [USER]        # USER defaults to nobody
#
# Run it as root: it makes a throw-away directory (mktemp -d) holding the clone,
# a HOME and a CARGO_HOME for USER (a copy of root's cargo proxies and registry
# cache, so no download is needed), and a mount namespace of its own in which
# root's toolchain (RUSTUP_HOME) is bind-mounted read-only where USER can read
# it. Nothing outside that directory changes (no permission is widened, the
# mount disappears with the namespace); the directory is removed at the end.
# The log of the run is printed; the exit status is the commands'.
# TCPALIVE_REQUIRE_* are cleared: a newcomer does not set them.
# NEWCOMER_DIR=DIR keeps the directory (and the build) for the next run, which
# then only moves the clone to HEAD.
# NEWCOMER_SEED_TARGET=1 copies this checkout's target/ into the clone first
# (a machine shared with others: cargo then rebuilds only what changed).
set -euo pipefail
user=${1:-nobody}
group=$(id -gn "$user")
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
[ "$(id -u)" = 0 ] || { echo "newcomer.sh: run as root (it switches to $user)" >&2; exit 2; }

# The README's commands: the first sh block after "## Set up and try it".
commands=$(awk '/^## Set up and try it/{s=1} s&&/^```sh/{b=1;next} b&&/^```/{exit} b' "$repo/README.md" |
  sed 's/[[:space:]]*#.*$//' | grep -v '^[[:space:]]*$')
[ -n "$commands" ] || { echo "newcomer.sh: no set-up commands in README.md" >&2; exit 1; }

if [ -n "${NEWCOMER_DIR:-}" ] && [ -d "$NEWCOMER_DIR/repo/.git" ]; then
  # A directory of an earlier run, kept: the clone moves to this HEAD, and cargo
  # rebuilds what changed.
  work=$NEWCOMER_DIR
  git -C "$work/repo" -c safe.directory='*' fetch -q "$repo" HEAD
  git -C "$work/repo" -c safe.directory='*' reset -q --hard FETCH_HEAD
else
  work=${NEWCOMER_DIR:-$(mktemp -d)}
  [ -n "${NEWCOMER_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
  mkdir -p "$work"
  chmod 755 "$work"
  git clone -q "$repo" "$work/repo"
  mkdir -p "$work/home" "$work/cargo" "$work/rustup"
  cp -a "$cargo_home/bin" "$work/cargo/bin"
  [ -d "$cargo_home/registry" ] && cp -a "$cargo_home/registry" "$work/cargo/registry"
fi
if [ "${NEWCOMER_SEED_TARGET:-0}" = 1 ] && [ -d "$repo/target" ]; then
  cp -a "$repo/target" "$work/repo/target"
fi
chown -R "$user:$group" "$work/repo" "$work/home" "$work/cargo"

printf 'newcomer.sh: as %s in %s, running:\n%s\n' "$user" "$work/repo" "$commands" >&2
# Diagnosis: NEWCOMER_NO_FAIL_FAST=1 goes on past a failing test file;
# NEWCOMER_TEST_ARGS (e.g. "--test readme") is added to the cargo test line.
if [ "${NEWCOMER_NO_FAIL_FAST:-0}" = 1 ]; then
  commands=$(printf '%s\n' "$commands" | sed '/^cargo test/s/$/ --no-fail-fast/')
fi
if [ -n "${NEWCOMER_TEST_ARGS:-}" ]; then
  commands=$(printf '%s\n' "$commands" | sed "/^cargo test/s|\$| $NEWCOMER_TEST_ARGS|")
fi
script=$(printf 'set -e\n%s\n' "$commands")
unshare -m --propagation private bash -c '
  set -euo pipefail
  mount --bind "$1" "$2/rustup" && mount -o remount,bind,ro "$2/rustup"
  cd "$2/repo"
  exec setpriv --reuid="$3" --regid="$4" --clear-groups -- \
    env -u TCPALIVE_REQUIRE_LAB -u TCPALIVE_REQUIRE_REDIS -u TCPALIVE_REQUIRE_POSTGRES \
      -u TCPALIVE_REQUIRE_TOOLCHAINS -u CI \
      HOME="$2/home" CARGO_HOME="$2/cargo" RUSTUP_HOME="$2/rustup" \
      PATH="$2/cargo/bin:/usr/local/bin:/usr/bin:/bin" \
      bash -c "$5"
' newcomer "$rustup_home" "$work" "$user" "$group" "$script"
