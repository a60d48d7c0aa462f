#!/usr/bin/env bash
# Downloads Debian packages into a folder and checks each .deb against the SHA256 of apt's signed
# package index; prints "name version size" per package. Runs apt-get update first when the lists
# do not know a package (root, or sudo). usage: apt_download.sh DIR PKG...
set -euo pipefail
DIR="$1"; shift
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
for p in "$@"; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then
    echo "apt_download: apt-get update (the package lists do not know $p)"
    $SUDO apt-get update -qq
    break
  fi
done
mkdir -p "$DIR"
[ "$(id -u)" -ne 0 ] || ! id _apt >/dev/null 2>&1 || chown _apt "$DIR"  # apt downloads as _apt
(cd "$DIR" && apt-get download -qq "$@")
for p in "$@"; do
  deb="$(ls "$DIR/${p}_"*.deb)"
  version="$(dpkg-deb -f "$deb" Version)"
  want="$(apt-cache show "$p=$version" | awk '/^SHA256:/ && !seen {print $2; seen = 1}')"
  got="$(sha256sum "$deb" | cut -d' ' -f1)"
  if [ -z "$want" ] || [ "$want" != "$got" ]; then
    echo "apt_download: $(basename "$deb") has sha256 $got, apt's index says '$want'" >&2
    exit 1
  fi
  echo "apt_download: $p $version ($(stat -c %s "$deb") bytes), sha256 matches apt's index"
done
