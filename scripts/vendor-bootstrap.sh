#!/usr/bin/env bash
# Re-create static/vendor/bootstrap from the npm package and check it against the recorded
# sha256 sums (pages load nothing from a CDN: they must work offline).
set -euo pipefail
cd "$(dirname "$0")/.."
version=5.3.8
tmp=$(mktemp -d)
(cd "$tmp" && npm pack --silent "bootstrap@$version" >/dev/null && tar xzf "bootstrap-$version.tgz")
cp "$tmp/package/dist/css/bootstrap.min.css" static/vendor/bootstrap/
cp "$tmp/package/dist/js/bootstrap.bundle.min.js" static/vendor/bootstrap/
rm -rf "$tmp"
(cd static/vendor/bootstrap && sha256sum -c SHA256SUMS)
