# Prints the image tag for the working tree (run as `bash deploy/image/tag.sh`).
#
# A clean tree is tagged with its commit. A dirty one gets the commit plus a
# hash of the content of every tracked and untracked (not ignored) file, so
# two different trees never share a tag, while rebuilding an unchanged tree
# reuses its tag and docker's cache. Outside git the tag is the time, which
# is never reused either. bin/ holds build outputs and is left out.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "nogit-$(date -u +%Y%m%d%H%M%S)"
  exit 0
fi
rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo norev)
if [ "$rev" != norev ] && [ -z "$(git status --porcelain -- . ':(exclude)bin')" ]; then
  echo "$rev"
  exit 0
fi
files=$(git ls-files -c -o --exclude-standard -- . ':(exclude)bin' |
  while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done || true)
hash=$({
  printf '%s\n' "$files"
  [ -z "$files" ] || printf '%s\n' "$files" | git hash-object --stdin-paths
} | git hash-object --stdin | cut -c1-10)
echo "$rev-dirty-$hash"
