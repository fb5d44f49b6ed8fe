#!/usr/bin/env bash
# Re-fetch the console's two libraries from the npm registry at their pinned versions and check their sha256
# (the files are committed under api/console/static: users install no JavaScript and build nothing).
# Bump a version here, run this script, and update the sums it prints into VENDOR_SUMS below.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=api/console/static
declare -A VENDOR_SUMS=(
  [chart-4.6.2.umd.min.js]=3f288f4f26882c26b58931fb586a9b4f30370b5de38d69dc005b0bd05b08e113
  [cytoscape-3.35.0.min.js]=71fa9ebec21a7ca2c40cff6aacc30d1f6464e363662ad4b2c197e1adc770cd94
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent chart.js@4.6.2 cytoscape@3.35.0 >/dev/null)
mkdir -p "$tmp/c" "$tmp/y"
tar xzf "$tmp/chart.js-4.6.2.tgz" -C "$tmp/c"
tar xzf "$tmp/cytoscape-3.35.0.tgz" -C "$tmp/y"
cp "$tmp/c/package/dist/chart.umd.min.js" "$dest/chart-4.6.2.umd.min.js"
cp "$tmp/c/package/LICENSE.md" "$dest/chart.js-LICENSE.md"
cp "$tmp/y/package/dist/cytoscape.min.js" "$dest/cytoscape-3.35.0.min.js"
cp "$tmp/y/package/LICENSE" "$dest/cytoscape-LICENSE"
for f in "${!VENDOR_SUMS[@]}"; do
  got=$(sha256sum "$dest/$f" | cut -d' ' -f1)
  if [ "$got" != "${VENDOR_SUMS[$f]}" ]; then
    echo "sha256 of $f is $got, expected ${VENDOR_SUMS[$f]}" >&2
    exit 1
  fi
done
echo "vendored: ${!VENDOR_SUMS[*]}"
