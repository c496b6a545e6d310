#!/usr/bin/env bash
# Manual pages: they render without groff warnings, every tool has one, and
# every long option a tool's --help lists is documented in its page.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
for page in "$root"/man/man*/*.[157]; do
    name=${page#"$root"/}
    if command -v groff >/dev/null; then
        warnings=$(groff -t -man -ww -z -Tutf8 "$page" 2>&1; MANWIDTH=80 man -l "$page" 2>&1 >/dev/null)
        if [ -z "$warnings" ]; then ok "$name renders cleanly"; else not_ok "$name renders cleanly" "$warnings"; fi
    fi
done
for tool in "$DSK_BIN"/dsk-*; do
    [ -x "$tool" ] || continue
    t=$(basename "$tool")
    page="$root/man/man1/$t.1"
    check "$t has a manual page" test -f "$page"
    [ -f "$page" ] || continue
    missing=""
    for opt in $("$tool" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
        # in roff a hyphen may be written \- or -
        grep -qE -- "$(sed 's/-/\\\\?-/g' <<<"$opt")" "$page" || missing+=" $opt"
    done
    check "$t: every --help option is in its page${missing:+ (missing:$missing)}" test -z "$missing"
done
echo "1..$tap_n"
