#!/usr/bin/env bash
# A one-minute tour of qorestor (its main job is `qorestor serve`, see the README). Builds the
# qorestor binary with cargo and runs it from wherever cargo put it (CARGO_TARGET_DIR and
# .cargo/config honoured: the path comes from cargo's own build report), then in a fresh data
# directory stores the same backup stream twice, reads it back bit-exact, shows the savings, and
# stores it once more in a storage group encrypted at rest. Removes everything it made when it
# ends, unless told to keep the data directory.
#
# Usage: scripts/quickstart.sh [--keep] [--profile PROFILE] [DATA_DIR]
#   DATA_DIR           a data directory to use; it must not exist yet or be empty, and is kept
#                      (default: a temporary directory under $TMPDIR, else /tmp, removed at the end)
#   --keep             keep the temporary data directory and print its path
#   --profile PROFILE  cargo's build profile (default release; dev reuses a debug build)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
keep=
profile=release
data=
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=yes ;;
    --profile)
      [ $# -ge 2 ] || { echo "quickstart.sh: --profile needs a profile name (release, dev)" >&2; exit 2; }
      profile=$2
      shift
      ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "quickstart.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *)
      [ -z "$data" ] || { echo "quickstart.sh: one DATA_DIR only, got $data and $1" >&2; exit 2; }
      data=$1
      ;;
  esac
  shift
done
if [ -n "$data" ] && [ -e "$data" ] && [ -n "$(ls -A "$data")" ]; then
  echo "quickstart.sh: $data is not empty; give a new directory (or none for a temporary one)" >&2
  exit 2
fi

# Build, and take the binary's path from cargo's report of what it built.
qs=$(cargo build --manifest-path "$repo/Cargo.toml" --locked --quiet --profile "$profile" -p qorestor-cli \
  --bin qorestor --message-format=json-render-diagnostics | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$qs" ] || { echo "quickstart.sh: cargo reported no qorestor binary" >&2; exit 1; }
echo "binary: $qs"

passphrase="quickstart demo passphrase" # of the encrypted storage group vault
work=$(mktemp -d "${TMPDIR:-/tmp}/qorestor-quickstart.XXXXXX")
if [ -z "$data" ]; then
  data=$work/data
else
  keep=given
fi
# The stand-in backups and the work directory are always removed, the data directory unless it
# was given or --keep asked for it.
finish() {
  if [ "$keep" = yes ] && [ -e "$data" ]; then
    mv "$data" "$work.data"
    data=$work.data
  fi
  rm -rf "$work"
  [ -z "$keep" ] || echo "data directory kept: $data (export QORESTOR_DATA=$data to go on using it;" \
    "the passphrase of its storage group vault is \"$passphrase\")"
}
trap finish EXIT
export QORESTOR_DATA=$data
unset QORESTOR_PASSPHRASE

# A stand-in for a nightly full: this repository's sources as a tar stream, plus random bytes.
{
  tar -cf - -C "$repo" --exclude=./target --exclude=./fuzz/target --exclude=./.git .
  head -c 20000000 /dev/urandom
} > "$work/backup.tar"
"$qs" init
"$qs" container add nightly --type object > /dev/null
"$qs" put nightly/monday.tar "$work/backup.tar"
"$qs" put nightly/tuesday.tar "$work/backup.tar" # the same bytes again: nothing new is stored
"$qs" get nightly/tuesday.tar "$work/restored.tar"
cmp "$work/backup.tar" "$work/restored.tar"
echo "tuesday.tar read back bit-exact"
"$qs" ls nightly
"$qs" stats --container nightly

# Encryption at rest: a storage group whose chunks are sealed with keys wrapped by a passphrase
# (every command that reads or writes it needs the passphrase), and a container in it.
"$qs" storage-group add vault --encryption internal --passphrase-stdin <<< "$passphrase" > /dev/null
"$qs" container add vault-c --storage-group vault --type object > /dev/null
QORESTOR_PASSPHRASE=$passphrase "$qs" put vault-c/monday.tar "$work/backup.tar"
QORESTOR_PASSPHRASE=$passphrase "$qs" get vault-c/monday.tar - | cmp - "$work/backup.tar"
echo "vault-c/monday.tar (encrypted at rest) read back bit-exact"
if "$qs" get vault-c/monday.tar - < /dev/null > /dev/null 2>&1; then
  echo "quickstart.sh: an encrypted stream was read without its passphrase" >&2
  exit 1
fi
echo "without the passphrase it cannot be read"
