#!/usr/bin/env bash
# Fetch the Debian packages that hold the Fashion-MNIST OOD benchmark's sources into the cache,
# unpacked with `dpkg-deb -x` (nothing is installed, no dependencies are pulled).
#
#   scripts/fetch-sources.sh            fetch what is missing (idempotent, instant when done)
#   scripts/fetch-sources.sh --force    fetch and unpack everything again
#
# Cache: $EOOD_CACHE if set, else <repo>/.cache (the same rule as `eood`, see docs/datasets.md).
# Layout: <cache>/sources/deb/<package>/        the package's files (usr/share/...)
#         <cache>/sources/deb/<package>.version  the version unpacked there (marks a complete unpack)
# MNIST, notMNIST and Omniglot are not Debian packages: `eood data fetch NAME` gets them (or they are
# read from ../shared/data when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
cache="${EOOD_CACHE:-$repo/.cache}"
dest="$cache/sources/deb"
force=0
[ "${1:-}" = "--force" ] && force=1

# Package -> what the benchmark reads from it.
packages=(
  dataset-fashion-mnist   # usr/share/datasets/fashion-mnist/*.gz (in-distribution)
  gimp-data               # usr/share/gimp/2.0/patterns/**/*.pat (Textures)
  python3-skimage         # usr/lib/python3/dist-packages/skimage/data/*.png|jpg (Textures, Photo-*)
  python3-sklearn         # usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg (Photo-*)
  openarena-081-textures  # usr/share/games/openarena/baseoa/pak4-textures.pk3 (auxiliary outliers)
  mate-backgrounds        # usr/share/backgrounds/mate/nature/*.jpg (auxiliary outliers)
)

missing=()
for p in "${packages[@]}"; do
  if [ "$force" = 1 ] || [ ! -f "$dest/$p.version" ]; then missing+=("$p"); fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "fetch-sources: all ${#packages[@]} packages already in $dest"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    echo "fetch-sources: needs $tool (a Debian/Ubuntu system); see docs/datasets.md for manual sources" >&2
    exit 1
  fi
done

mkdir -p "$dest"
work="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# apt's sandbox user must be able to write where the .deb lands.
chmod 777 "$work"

# Package lists are needed on a fresh machine (an empty /var/lib/apt/lists).
if ! apt-cache show "${missing[0]}" >/dev/null 2>&1; then
  echo "fetch-sources: apt-get update"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
fi

echo "fetch-sources: downloading ${missing[*]}"
(cd "$work" && apt-get download -q "${missing[@]}")

for p in "${missing[@]}"; do
  deb=("$work/${p}"_*.deb)
  version="$(dpkg-deb -f "${deb[0]}" Version)"
  rm -rf "$dest/$p" "$dest/$p.version"
  dpkg-deb -x "${deb[0]}" "$work/$p"
  mv "$work/$p" "$dest/$p"
  sha="$(sha256sum "${deb[0]}" | cut -d' ' -f1)"
  # Written last: its presence means the unpack is complete.
  printf '%s %s\n' "$version" "$sha" > "$dest/$p.version"
  echo "fetch-sources: $p $version -> $dest/$p"
done
