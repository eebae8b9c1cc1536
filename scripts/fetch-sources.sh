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

# Package, pinned version, SHA-256 of its .deb -> what the benchmark reads from it. The same pins
# are in crates/ood-data/src/registry/catalog.rs (a test keeps the two lists equal).
pins=(
  dataset-fashion-mnist 0.0~git20200523.55506a9-1 39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
  #   usr/share/datasets/fashion-mnist/*.gz (in-distribution)
  gimp-data 2.10.34-1+deb12u10 89007a69d4ef2b0440e5419e75d4112cfd1c49e97db38220d210b9f86322be7c
  #   usr/share/gimp/2.0/patterns/**/*.pat (Textures)
  python3-skimage 0.19.3-8 728d88c3e3440f1f3712de0805dc834d29248ff07e1eec8c0f3da07606f752f9
  #   usr/lib/python3/dist-packages/skimage/data/*.png|jpg (Textures, Photo-*)
  python3-sklearn 1.2.1+dfsg-1 ca0c6be401d14871c7e93cfdd8d1f561595dc65e6e2ad2501d568aee7f7efc58
  #   usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg (Photo-*)
  gcompris-qt-data 3.1-2 e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f
  #   usr/share/gcompris-qt/rcc/*.rcc, WebP photos inside (Photo-*)
  lomiri-wallpapers-16.04 20.04.0-2 a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab
  #   usr/share/backgrounds/*.jpg (Photo-*)
  plasma-workspace-wallpapers 4:5.27.5-2 32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b
  #   usr/share/wallpapers/*/contents/images/2560x1600.jpg (Photo-*)
  openarena-081-textures 0.8.5split-14 72bf05abd5286a1523b56ca04e25bceb775813d747f92ecd20749d512361a81f
  #   usr/share/games/openarena/baseoa/pak4-textures.pk3 (auxiliary outliers)
  mate-backgrounds 1.26.0-1 7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04
  #   usr/share/backgrounds/mate/nature/*.jpg (auxiliary outliers)
)
packages=(); declare -A version sha
for ((i = 0; i < ${#pins[@]}; i += 3)); do
  packages+=("${pins[i]}"); version[${pins[i]}]="${pins[i+1]}"; sha[${pins[i]}]="${pins[i+2]}"
done

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
for p in "${missing[@]}"; do
  # The pinned version; a mirror that no longer carries it (a superseded security update) gets
  # the current one, with a warning, and its digest is then not checked against the pin.
  if ! (cd "$work" && apt-get download -q "$p=${version[$p]}"); then
    echo "fetch-sources: warning: $p ${version[$p]} is not available; fetching the current version" >&2
    (cd "$work" && apt-get download -q "$p")
  fi
done

for p in "${missing[@]}"; do
  deb=("$work/${p}"_*.deb)
  got="$(dpkg-deb -f "${deb[0]}" Version)"
  digest="$(sha256sum "${deb[0]}" | cut -d' ' -f1)"
  if [ "$got" = "${version[$p]}" ] && [ "$digest" != "${sha[$p]}" ]; then
    echo "fetch-sources: $p $got: SHA-256 $digest, expected ${sha[$p]}; not unpacked" >&2
    exit 1
  fi
  rm -rf "$dest/$p" "$dest/$p.version"
  dpkg-deb -x "${deb[0]}" "$work/$p"
  mv "$work/$p" "$dest/$p"
  # Written last: its presence means the unpack is complete.
  printf '%s %s\n' "$got" "$digest" > "$dest/$p.version"
  echo "fetch-sources: $p $got -> $dest/$p"
done
