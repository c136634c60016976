#!/usr/bin/env bash
# MathJax 3 for the documentation, so that formulas render without a network: the npm
# package's SVG bundle (fonts included) and the extensions it loads on demand, copied into
# docs/_static/mathjax (ignored by git; ~4 MB). docs/conf.py points Sphinx at it and runs
# this script when it is missing. npm checks the tarball against the registry's hash.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.2.2
dest=docs/_static/mathjax
if [ -f "$dest/tex-svg.js" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$VERSION" ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "fetch_mathjax: npm is needed (apt-get install npm)" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mathjax@$VERSION" >/dev/null && tar xzf "mathjax-$VERSION.tgz")
rm -rf "$dest"
mkdir -p "$dest"
es5="$tmp/package/es5"
cp "$es5/tex-svg.js" "$dest/"
# TeX extensions (autoloaded by macro), the menu and accessibility parts load lazily.
cp -r "$es5/input" "$es5/a11y" "$es5/ui" "$dest/"
cp "$tmp/package/LICENSE" "$dest/"
echo "$VERSION" > "$dest/VERSION"
echo "MathJax $VERSION in $dest"
