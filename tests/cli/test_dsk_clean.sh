#!/usr/bin/env bash
# CLI tests for dsk-clean: behaviour, options and every error path.
. "$(dirname "$0")/lib.sh"

# ---- a small corpus -------------------------------------------------------------
prose() {  # a paragraph of ordinary English that passes the default filters
    cat <<TXT
The committee met on Tuesday to review the budget for the coming year. Members agreed that the library should have longer opening hours, and that the proposal to repair the roof of the town hall would be discussed with the contractors next month.

Several residents spoke about the state of the roads in the $1 district. One of them asked whether the council had a plan to deal with the potholes on Main Street, and the chair promised to report back with an answer. The meeting closed at nine.
TXT
}
json_doc() {  # json_doc ID TEXT-GENERATOR-ARG
    python3 -c 'import json,sys; print(json.dumps({"id": sys.argv[1], "text": sys.stdin.read(), "meta": {"n": 1}}))' "$1"
}
{
    prose north | json_doc a
    prose south | json_doc b
    prose north | json_doc dup-of-a
    echo '{"id":"short","text":"Too short."}'
    prose east | sed 's/Tuesday/Wednesday/' | json_doc c
} > "$T/docs.jsonl"

# ---- basics ---------------------------------------------------------------------
expect_exit 0 "--help exits 0" dsk-clean --help
check "--help lists options" grep -q -- "--records MODE" "$T/out"
expect_exit 0 "--version exits 0" dsk-clean --version
check "--version names the tool" grep -q "^dsk-clean (dsk) " "$T/out"
expect_exit 0 "--list-params" dsk-clean --list-params
check "--list-params shows defaults" grep -qx "gopher_quality.min_words=50" "$T/out"

expect_exit 0 "clean a JSONL file" dsk-clean -q "$T/docs.jsonl"
check "good docs kept, duplicate and short dropped" test "$(wc -l < "$T/out")" -eq 3
check "other fields are kept" grep -q '"id":"a".*"meta":{"n":1}' "$T/out"
check "every doc gets a split" test "$(grep -c '"split":"\(train\|val\|test\)"' "$T/out")" -eq 3
check "summary is quiet with -q" test ! -s "$T/err"

expect_exit 0 "stdin works" sh -c "dsk-clean -q < '$T/docs.jsonl' > '$T/stdin.out'"
check "stdin gives the same bytes" cmp -s "$T/stdin.out" <(dsk-clean -q "$T/docs.jsonl")
expect_exit 0 "- means stdin" sh -c "dsk-clean -q - < '$T/docs.jsonl' | cmp -s - '$T/stdin.out'"

expect_exit 0 "empty input is fine" sh -c "dsk-clean -q < /dev/null"
check "empty input, empty output" test ! -s "$T/out"

# ---- stats and rejects -------------------------------------------------------------
expect_exit 0 "--stats and --rejects" dsk-clean -q --stats "$T/stats.json" --rejects "$T/rej.jsonl" "$T/docs.jsonl"
check "stats: docs_in" test "$(json_get "$T/stats.json" "['docs_in']")" = 5
check "stats: docs_out" test "$(json_get "$T/stats.json" "['docs_out']")" = 3
check "stats: exact duplicate counted" test "$(json_get "$T/stats.json" "['dropped']['dedup.exact']")" = 1
check "stats: short doc counted" test "$(json_get "$T/stats.json" "['dropped']['gopher_quality.min_words']")" = 1
check "rejects carry the rule" grep -q '"id":"dup-of-a".*"rejected_by":"dedup.exact"' "$T/rej.jsonl"
check "rejects: every drop is there" test "$(wc -l < "$T/rej.jsonl")" -eq 2
expect_exit 0 "summary on stderr" dsk-clean "$T/docs.jsonl"
expect_err_contains "5 docs in, 3 out" "summary counts"
expect_err_contains "dedup.exact 1" "summary names the rules"

# ---- determinism ------------------------------------------------------------------------
for i in $(seq 1 300); do prose "n$i" | json_doc "d$i"; done > "$T/many.jsonl"
dsk-clean -q -j1 --dedup exact,minhash "$T/many.jsonl" > "$T/j1.out"
dsk-clean -q -j2 --dedup exact,minhash "$T/many.jsonl" > "$T/j2.out"
dsk-clean -q -j7 --dedup exact,minhash "$T/many.jsonl" > "$T/j7.out"
check "same bytes with 1, 2 and 7 threads" sh -c "cmp -s '$T/j1.out' '$T/j2.out' && cmp -s '$T/j1.out' '$T/j7.out'"
check "minhash drops near duplicates" test "$(wc -l < "$T/j1.out")" -lt 300
dsk-clean -q --dedup none "$T/many.jsonl" > "$T/nodedup.out"
check "--dedup none keeps all" test "$(wc -l < "$T/nodedup.out")" -eq 300

# ---- split ----------------------------------------------------------------------------
for i in $(seq 1 2000); do echo "{\"text\":\"document number $i is here\"}"; done > "$T/split.jsonl"
dsk-clean -q --filters none --split 80:10:10 --seed 7 "$T/split.jsonl" > "$T/split.out"
train=$(grep -c '"split":"train"' "$T/split.out"); val=$(grep -c '"split":"val"' "$T/split.out")
check "split ratios are close to 80:10:10 ($train train, $val val)" test "$train" -gt 1500 -a "$train" -lt 1700 -a "$val" -gt 140 -a "$val" -lt 260
dsk-clean -q --filters none --split 80:10:10 --seed 8 "$T/split.jsonl" > "$T/split8.out"
check "the seed changes the split" sh -c "! cmp -s '$T/split.out' '$T/split8.out'"
echo '{"text":"kept split value","split":"test"}' | dsk-clean -q --filters none > "$T/out"
check "an input split is respected" grep -q '"split":"test"' "$T/out"
expect_exit 64 "bad --split" dsk-clean --split 1:2 "$T/docs.jsonl"
expect_exit 64 "zero --split" dsk-clean --split 0:0:0 "$T/docs.jsonl"

# ---- plain-text records -------------------------------------------------------------------
printf 'First fortune\nwith two lines.\n%%\nSecond one.\n%%\n\033[32mColoured\033[m text.\n%%\n' > "$T/fortunes"
expect_exit 0 "--records regex" dsk-clean -q --filters none --records 'regex:^%$' "$T/fortunes"
check "three records" test "$(wc -l < "$T/out")" -eq 3
check "record text joined by newlines" grep -q '"text":"First fortune\\nwith two lines."' "$T/out"
check "ANSI colour codes removed" grep -q '"text":"Coloured text."' "$T/out"
check "source and line recorded" grep -q '"source":"'"$T"'/fortunes","line":4' "$T/out"
printf 'one\n\ntwo\nthree\n' > "$T/lines.txt"
dsk-clean -q --filters none --records lines "$T/lines.txt" > "$T/out"
check "--records lines" test "$(wc -l < "$T/out")" -eq 3
dsk-clean -q --filters none --records paragraphs "$T/lines.txt" > "$T/out"
check "--records paragraphs" test "$(wc -l < "$T/out")" -eq 2
printf 'a\0b\0' | dsk-clean -q --filters none --records nul > "$T/out"
check "--records nul" test "$(wc -l < "$T/out")" -eq 2
# A NUL-terminated record's "line" is the line it starts on, and a record of
# blank lines is a separator.
printf 'first doc\nline two\n\0  \n \n\0second\0\n\0third\nx\0' | dsk-clean -q --filters none --records nul > "$T/out"
check "--records nul: records of blank lines skipped" test "$(wc -l < "$T/out")" -eq 3
check "--records nul: each record's line is the line it starts on" \
    test "$(grep -o '"line":[0-9]*' "$T/out" | tr '\n' ' ')" = '"line":1 "line":5 "line":6 '
expect_exit 64 "bad --records regex" dsk-clean --records 'regex:(' "$T/fortunes"
expect_err_contains "at offset 1" "records regex error has the offset"
expect_exit 64 "unknown --records" dsk-clean --records words "$T/fortunes"
expect_exit 64 "--field with text records" dsk-clean --records lines --field body "$T/lines.txt"

# ---- JSONL details --------------------------------------------------------------------------
echo '{"id":12345678901234567890,"x":1.10000000000000001,"text":"a  b","n":null}' | dsk-clean -q --filters none > "$T/out"
check "other fields pass through byte for byte" grep -qF '{"id":12345678901234567890,"x":1.10000000000000001,"text":"a b","n":null,"split":' "$T/out"
echo '{"body":"Hello there.","text":5}' | dsk-clean -q --filters none --field body > "$T/out"
check "--field picks the text field" grep -q '"body":"Hello there."' "$T/out"
printf '{"messages":[{"role":"user","content":"Hi \\u001b[1mthere\\u001b[0m"},{"role":"assistant","content":"Hello!  How   can I help?"}]}\n' |
    dsk-clean -q > "$T/out"
check "chat records pass through the quality filters" grep -q '"content":"Hello! How can I help?"' "$T/out"
check "chat content is cleaned" grep -q '"content":"Hi there"' "$T/out"
# As dsk-bpe tells the kinds: a null or other "text" beside messages (a merged dataset's empty column) is a
# chat record (it was refused: "text" is not a string).
printf '%s\n' '{"text":null,"messages":[{"role":"user","content":"Hello there, how are you?"},{"role":"assistant","content":"Very well, thank you for asking."}]}' > "$T/nulltext.jsonl"
expect_exit 0 "a null text beside messages is a chat record" dsk-clean -q --filters none "$T/nulltext.jsonl"
check "... kept" grep -q '"Very well, thank you for asking."' "$T/out"
# A record whose answer is a tool call alone is not empty (it was dropped as empty).
printf '%s\n' '{"messages":[{"role":"user","content":""},{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]}]}' > "$T/callonly.jsonl"
expect_exit 0 "a record of a call alone" dsk-clean -q --filters none --dedup none "$T/callonly.jsonl"
check "... is kept, not dropped as empty" grep -q '"weather"' "$T/out"
printf '%s\n' '{"prompt":[{"role":"user","content":"a"},{"role":"bot","content":"b"}],"chosen":"y","rejected":"n"}' > "$T/badprompt.jsonl"
expect_exit 65 "a bad message in a preference prompt" dsk-clean -q --filters none "$T/badprompt.jsonl"
expect_err_contains "\"prompt\" message 1 has role 'bot'" "... is named with its field"
echo '{"messages":[{"role":"bot","content":"Hello there."}]}' > "$T/bot.jsonl"
expect_exit 65 "a chat role dsk-bpe would refuse" dsk-clean -q --filters none "$T/bot.jsonl"
expect_err_contains "system, developer, user, assistant or tool" "the roles are named"
# Tool use as dsk-docs(5) writes it (and dsk-bpe reads it): tools, an
# assistant's tool_calls with null content, a tool message.
cat > "$T/tool.jsonl" <<'EOF'
{"tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}], "messages": [{"role": "user", "content": "Weather in  Oslo?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "rain, 4 C"}, {"role": "assistant", "content": "Rain, 4 C in Oslo."}]}
{"prompt": [{"role": "user", "content": "Weather in Oslo?"}], "chosen": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}]}], "rejected": [{"role": "assistant", "content": "No idea."}]}
EOF
expect_exit 0 "tool-use chat and preference records pass" dsk-clean -q --filters none -o "$T/tool.out" "$T/tool.jsonl"
check "... their contents cleaned, their calls as they were" python3 - "$T/tool.out" <<'PY'
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])]
assert a["messages"][0]["content"] == "Weather in Oslo?" and a["messages"][1]["content"] is None, a
assert a["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}', a
assert a["messages"][2]["role"] == "tool" and b["chosen"][0]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}, b
PY
echo '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "[1]"}}]}]}' > "$T/badcall.jsonl"
expect_exit 65 "a call whose arguments are not an object" dsk-clean -q --filters none "$T/badcall.jsonl"
expect_err_contains "must be a JSON object" "... as dsk-bpe says it"
echo '{"prompt":"Say hi","chosen":"Hi!","rejected":"No."}' | dsk-clean -q --stats "$T/s.json" > "$T/out"
check "preference records pass" test "$(json_get "$T/s.json" "['kinds']['preference']")" = 1
printf '{"text":"ok doc here"}\n{"text": broken\n' > "$T/bad.jsonl"
expect_exit 65 "malformed JSON fails" dsk-clean -q --filters none "$T/bad.jsonl"
expect_err_contains "bad.jsonl:2: malformed JSON" "error names file and line"
expect_exit 65 "-o: no output on failure" dsk-clean -q --filters none -o "$T/never.jsonl" "$T/bad.jsonl"
check "-o left no file behind" sh -c "! ls '$T' | grep -q never"
expect_exit 0 "--on-error skip" dsk-clean -q --filters none --on-error skip --stats "$T/s.json" --rejects "$T/r.jsonl" "$T/bad.jsonl"
check "skipped lines are counted" test "$(json_get "$T/s.json" "['malformed_skipped']")" = 1
check "skipped lines go to rejects" grep -q '"rejected_by":"malformed"' "$T/r.jsonl"
echo '[1,2]' > "$T/arr.jsonl"
expect_exit 65 "non-object line" dsk-clean -q "$T/arr.jsonl"
echo '{"title":"x"}' > "$T/notext.jsonl"
expect_exit 65 "missing text field" dsk-clean -q "$T/notext.jsonl"
expect_err_contains 'no string "text" field, no "messages", no prompt/chosen/rejected' "missing field is named, as dsk-bpe names it"
echo '{"messages":[]}' > "$T/badchat.jsonl"
expect_exit 65 "empty messages" dsk-clean -q "$T/badchat.jsonl"
echo '{"prompt":"Q","chosen":"A","rejected":[]}' > "$T/badpref.jsonl"
expect_exit 65 "a preference record with an empty rejected list" dsk-clean -q "$T/badpref.jsonl"
expect_err_contains '"rejected" must be' "... names the field (it said \"messages\")"
echo '{"prompt":"Q","chosen":[{"role":"assistant","content":"a"},{"role":"user","content":"b"}],"rejected":"x"}' > "$T/multi.jsonl"
expect_exit 65 "a preference answer of several messages" dsk-clean -q "$T/multi.jsonl"
printf '%s\n' '{"messages":[{"role":"user","content":"   "},{"role":"assistant","content":"\u001b[0m"}]}' > "$T/blankchat.jsonl"
dsk-clean -q --rejects "$T/blank-rej.jsonl" "$T/blankchat.jsonl" > "$T/out"
check "a chat record whose every message is left empty is dropped as empty" \
    sh -c "test ! -s '$T/out' && grep -q '\"rejected_by\":\"empty\"' '$T/blank-rej.jsonl'"
head -c 2000 /dev/zero | tr '\0' 'x' | sed 's/^/{"text":"/; s/$/"}/' > "$T/long.jsonl"
expect_exit 65 "--max-record-bytes" dsk-clean -q --max-record-bytes 1K "$T/long.jsonl"
expect_err_contains "longer than the 1024-byte limit" "record limit message"

# ---- UTF-8 ----------------------------------------------------------------------------------------
printf '{"text":"bad \xff byte here"}\n' > "$T/utf8.jsonl"
dsk-clean -q --filters none --stats "$T/s.json" "$T/utf8.jsonl" > "$T/out"
check "--utf8 replace (default)" grep -q "bad $(printf '\xef\xbf\xbd') byte" "$T/out"
check "repairs are counted" test "$(json_get "$T/s.json" "['modified']['utf8_repaired_docs']")" = 1
dsk-clean -q --filters none --utf8 drop "$T/utf8.jsonl" > "$T/out"
check "--utf8 drop" test ! -s "$T/out"
expect_exit 65 "--utf8 fail" dsk-clean -q --filters none --utf8 fail "$T/utf8.jsonl"
expect_err_contains "invalid UTF-8" "utf8 failure message"
expect_exit 64 "bad --utf8" dsk-clean --utf8 maybe "$T/utf8.jsonl"

# ---- normalization ------------------------------------------------------------------------------------
printf '{"text":"\xef\xac\x81ne  caf\x65\xcc\x81"}\n' > "$T/norm.jsonl"
dsk-clean -q --filters none "$T/norm.jsonl" > "$T/out"
check "NFC by default" grep -q "\"text\":\"$(printf '\xef\xac\x81')ne café\"" "$T/out"
dsk-clean -q --filters none --normalize nfkc "$T/norm.jsonl" > "$T/out"
check "--normalize nfkc" grep -q '"text":"fine café"' "$T/out"
dsk-clean -q --filters none --whitespace keep "$T/norm.jsonl" > "$T/out"
check "--whitespace keep" grep -q 'ne  caf' "$T/out"

# ---- regex rules ------------------------------------------------------------------------------------------
printf '%s\n' '{"text":"mail me at a.b@example.com <b>now</b>"}' '{"text":"BUY CHEAP PILLS"}' '{"text":"neutral"}' > "$T/re.jsonl"
dsk-clean -q --filters none --replace '<[^>]+>=' --replace '[\w.]+@[\w.]+=<EMAIL>' --drop '(?i)cheap pills' "$T/re.jsonl" > "$T/out"
check "--replace and --drop" sh -c "grep -q '\"text\":\"mail me at <EMAIL> now\"' '$T/out' && ! grep -q PILLS '$T/out'"
# A regex PCRE2 gives up on (its match limit) is an error, not a miss.
python3 -c "import json; print(json.dumps({'text': 'a' * 40 + ' xyz'}))" > "$T/limit.jsonl"
expect_exit 65 "--drop that hits PCRE2's match limit: an error, not a kept document" \
    dsk-clean -q --filters none --drop '(a+)+b|xyz' "$T/limit.jsonl"
expect_err_contains "match limit" "... the limit is named"
printf 'doc one\n%s\ndoc two\n' "$(printf 'a%.0s' $(seq 40))" > "$T/limit.txt"
expect_exit 65 "--records regex: a separator that hits the match limit: an error, not merged records" \
    dsk-clean -q --filters none --records 'regex:(a+)+b|a$' "$T/limit.txt"
seq 1 300 | sed 's/.*/{"text":"line & of the mail x"}/' > "$T/mails.jsonl"
expect_exit 0 "--replace over 300 documents on one thread" dsk-clean -q -j1 --filters none --dedup none --replace 'x=y' \
    -o "$T/mails.out" "$T/mails.jsonl"
check "... each replaced" test "$(grep -c 'of the mail y"' "$T/mails.out")" = 300
printf '{"text":"a <b> x</b> y"}\n' | dsk-clean -q --filters none --replace '<[^>]+>=' --replace 'x=\x01x\x1b[31m' > "$T/out"
check "--replace output is normalized again: no control character or escape put back, no double space left" \
    grep -q '"text":"a x y"' "$T/out"
dsk-clean -q --filters none --keep '^mail' "$T/re.jsonl" > "$T/out"
check "--keep" test "$(wc -l < "$T/out")" -eq 1
printf 'drop (?i)pills\nreplace mail=post\n' > "$T/rules.txt"
dsk-clean -q --filters none --rules "$T/rules.txt" "$T/re.jsonl" > "$T/out"
check "--rules file" sh -c "grep -q 'post me' '$T/out' && test \$(wc -l < '$T/out') -eq 2"
expect_exit 64 "bad --drop regex" dsk-clean --drop 'a[b' "$T/re.jsonl"
expect_err_contains "offset 3" "regex error points at the offset"
printf 'frobnicate x\n' > "$T/badrules.txt"
expect_exit 64 "bad rules file" dsk-clean --rules "$T/badrules.txt" "$T/re.jsonl"
expect_err_contains "badrules.txt:1: expected 'drop', 'keep' or 'replace', got 'frobnicate'" "rules file error names the line and the word"
expect_exit 66 "missing rules file" dsk-clean --rules "$T/nope.txt" "$T/re.jsonl"
expect_exit 64 "--replace naming a group the pattern lacks" dsk-clean --replace 'o=$9' "$T/re.jsonl"
expect_err_contains "has no group '9'" "the missing group is named"
expect_exit 64 "--min-chars over --max-chars (everything would be dropped)" dsk-clean --min-chars 5 --max-chars 3 "$T/re.jsonl"
expect_exit 64 "--records regex: without a pattern" dsk-clean --records 'regex:' "$T/re.jsonl"
expect_exit 64 "--max-record-bytes 0" dsk-clean --max-record-bytes 0 "$T/re.jsonl"
expect_exit 73 "--dedup-db in a directory that does not exist (as -o there)" dsk-clean --dedup-db "$T/nodir/db" "$T/re.jsonl"
python3 -c "
import json
for t in ['first document here is fine', 'x' * 3000, 'third document here is fine']: print(json.dumps({'text': t}))
" > "$T/long.jsonl"
expect_exit 65 "a record over --max-record-bytes" dsk-clean --filters none --max-record-bytes 1K "$T/long.jsonl"
expect_exit 0 "... skipped with --on-error skip, the run going on" dsk-clean --filters none --max-record-bytes 1K \
    --on-error skip --rejects "$T/long-rej.jsonl" -o "$T/long-out.jsonl" "$T/long.jsonl"
check "... the two others kept, the long one a malformed reject naming its line" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
out = [json.loads(l)["text"] for l in open(f"{t}/long-out.jsonl")]
rej = [json.loads(l) for l in open(f"{t}/long-rej.jsonl")]
assert out == ["first document here is fine", "third document here is fine"], out
assert len(rej) == 1 and rej[0]["rejected_by"] == "malformed" and rej[0]["line"] == 2, rej
PY
printf 'one\ntwo\n\n%s\nrest of it\n\nthird\n' "$(head -c 3000 /dev/zero | tr '\0' y)" > "$T/long.txt"
expect_exit 0 "... and a paragraph with a line over it goes whole" dsk-clean --filters none --records paragraphs \
    --max-record-bytes 1K --on-error skip -o "$T/long-p.jsonl" "$T/long.txt"
check "... the paragraphs around it kept" python3 -c '
import json, sys
assert [json.loads(l)["text"] for l in open(sys.argv[1])] == ["one\ntwo", "third"]' "$T/long-p.jsonl"
# an over-long last record without its newline, arriving in two reads, leaves no tail behind; NUL records
# after a skipped one keep their line numbers
(head -c 3000 /dev/zero | tr '\0' x; sleep 0.3; printf 'tail words here') | dsk-clean -q --records lines \
    --max-record-bytes 1000 --on-error skip --filters none > "$T/tail.jsonl"
check "a skipped unterminated last record leaves nothing" test ! -s "$T/tail.jsonl"
printf 'one\ntwo\nthree\0%s\nmore\nlines\0after skip\nx\0last\0' "$(head -c 50 /dev/zero | tr '\0' y)" |
    dsk-clean -q --records nul --max-record-bytes 40 --on-error skip --filters none --rejects "$T/nul-rej.jsonl" \
    --stats "$T/nul-stats.json" > "$T/nul.jsonl"
check "NUL records: the skipped one and those after it at their own lines, its bytes counted" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
lines = [json.loads(l)["line"] for l in open(f"{t}/nul.jsonl")]
rej = [json.loads(l)["line"] for l in open(f"{t}/nul-rej.jsonl")]
assert lines == [1, 5, 6] and rej == [3], (lines, rej)
assert json.load(open(f"{t}/nul-stats.json"))["bytes_in"] == 90
PY
printf '{"text":"first doc a here"}\n{"text":"second doc b here"}\n' > "$T/unset.jsonl"
expect_exit 0 "--replace with a group unset at a match (an alternation): empty, not an error mid-run" \
    dsk-clean -q --filters none --replace '(a)|b=[$1]' "$T/unset.jsonl"
check "... as empty text" grep -q 'second doc \[\] here' "$T/out"
expect_exit 64 "--stats - into the documents on standard output" dsk-clean --filters none --stats - "$T/re.jsonl"
expect_exit 0 "--stats - with -o FILE" dsk-clean --filters none --stats - -o "$T/so.jsonl" "$T/re.jsonl"
check "... the counts on standard output" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out"
expect_exit 64 "a replacement with an escape PCRE2 does not know, refused before any input" \
    dsk-clean --filters none --replace 'foo=\q' -o "$T/x.jsonl" "$T/none.jsonl"
expect_err_contains "bad escape sequence in replacement string" "... said as PCRE2 says it"
# The substitution runs without UTF-8 checks: a replacement that is not
# UTF-8 was read past its end (and wrote bytes that are not UTF-8).
expect_exit 64 "--replace with a replacement that is not UTF-8" dsk-clean --replace $'o=\xff' "$T/re.jsonl"
printf 'replace o=\xff\xfe\n' > "$T/bad.rules"
expect_exit 64 "a rules file's replacement that is not UTF-8" dsk-clean --rules "$T/bad.rules" "$T/re.jsonl"
expect_err_contains "bad.rules:1: the replacement is not UTF-8" "the message names the rules file's line"
expect_exit 64 "--replace naming a group by a name the pattern lacks" dsk-clean --replace '(?<x>o)=${y}' "$T/re.jsonl"
expect_exit 0 "--replace: \\Q...\\E quotes a \$" dsk-clean -q --filters none --replace 'o=[\Q$1\E]' "$T/re.jsonl"
expect_exit 0 "--replace: a name (?J) gives several groups" dsk-clean -q --filters none \
    --replace '(?J)(?<y>o)|(?<y>e)=${y}' "$T/re.jsonl"

# ---- filters -----------------------------------------------------------------------------------------------
expect_exit 0 "--set tunes a threshold" dsk-clean -q --set gopher_quality.min_words=1 --set gopher_quality.min_stop_words=0 --set gopher_quality.min_alpha_words_ratio=0.6 --filters gopher-quality "$T/docs.jsonl"
check "tuned threshold keeps the short doc" grep -q '"id":"short"' "$T/out"
expect_exit 64 "--set unknown name" dsk-clean --set nope=1 "$T/docs.jsonl"
expect_exit 64 "--set bad value" dsk-clean --set c4.min_sentences=x "$T/docs.jsonl"
expect_exit 64 "an empty --dedup (an unset Makefile variable) is not read as none" dsk-clean --dedup "" "$T/docs.jsonl"
expect_exit 64 "an empty name in --filters" dsk-clean --filters "c4,," "$T/docs.jsonl"
printf '%s\n' '{"text":"Paris is the capital of France.[1] It is large.[23] See also[edit] here ok.\nLine two has words in it.\nLine three has words in it."}' > "$T/cite.jsonl"
dsk-clean -q --filters c4 --dedup none --set c4.min_sentences=0 "$T/cite.jsonl" > "$T/out"
check "c4 strips citation marks when it removes no line (it kept them then)" \
    grep -q '"Paris is the capital of France. It is large. See also here ok.\\nLine two' "$T/out"
expect_exit 64 "--filters unknown" dsk-clean --filters gopher "$T/docs.jsonl"
expect_exit 0 "--filters=-gopher-quality" dsk-clean -q --filters=-gopher-quality "$T/docs.jsonl"
expect_exit 0 "--min-chars" dsk-clean -q --filters none --min-chars 20 --stats "$T/s.json" "$T/docs.jsonl"
check "--min-chars drops short docs" test "$(json_get "$T/s.json" "['dropped']['length.min_chars']")" = 1

expect_exit 0 "--max-chars" dsk-clean -q --filters none --max-chars 20 --stats "$T/s.json" "$T/docs.jsonl"
check "--max-chars drops long docs" test "$(json_get "$T/s.json" "['dropped']['length.max_chars']")" = 4
printf '{"text":"caf\x65\xcc\x81"}\n' | dsk-clean -q --filters none --normalize none > "$T/out"
check "--normalize none keeps combining marks" grep -q "cafe$(printf '\xcc\x81')" "$T/out"
dsk-clean -q --dedup exact,minhash --minhash 3,20,5 "$T/many.jsonl" > "$T/mh.out"
check "--minhash settings are used" test "$(wc -l < "$T/mh.out")" -lt 300
expect_exit 64 "bad --threads" dsk-clean -j 0 "$T/docs.jsonl"
expect_exit 64 "bad --max-record-bytes" dsk-clean --max-record-bytes 12Q "$T/docs.jsonl"
expect_exit 64 "bad --on-error" dsk-clean --on-error ignore "$T/docs.jsonl"
expect_exit 64 "bad --normalize" dsk-clean --normalize nfd "$T/docs.jsonl"
expect_exit 64 "bad --whitespace" dsk-clean --whitespace squash "$T/docs.jsonl"
expect_exit 64 "bad --dedup" dsk-clean --dedup fuzzy "$T/docs.jsonl"
expect_exit 64 "bad --seed" dsk-clean --seed -1 "$T/docs.jsonl"
expect_exit 64 "--replace without =" dsk-clean --replace abc "$T/docs.jsonl"
expect_exit 64 "-o and --rejects naming one file (two spellings)" dsk-clean -o "$T/same.jsonl" --rejects "$T/./same.jsonl" \
    "$T/docs.jsonl"
expect_exit 64 "-o and --stats naming one file" dsk-clean -o "$T/same.jsonl" --stats "$T/same.jsonl" "$T/docs.jsonl"
check "... and nothing is written" test ! -e "$T/same.jsonl"

# ---- dedup database -------------------------------------------------------------------------------------------
head -2 "$T/many.jsonl" > "$T/shard1.jsonl"; sed -n '2,3p' "$T/many.jsonl" > "$T/shard2.jsonl"
dsk-clean -q --dedup-db "$T/dedup.lmdb" "$T/shard1.jsonl" > "$T/o1"
dsk-clean -q --dedup-db "$T/dedup.lmdb" "$T/shard2.jsonl" > "$T/o2"
check "--dedup-db dedups across runs" test "$(cat "$T/o1" "$T/o2" | wc -l)" -eq 3
# A run that fails marks nothing as seen: retried, its documents come out
printf '{"text":"alpha doc one"}\n{"text":"beta doc two"}\n{"text":bad}\n' > "$T/part.jsonl"
expect_exit 65 "--dedup-db: a run that fails on bad input" dsk-clean -q --filters none --dedup-db "$T/retry.lmdb" \
    -o "$T/retry.jsonl" "$T/part.jsonl"
head -2 "$T/part.jsonl" > "$T/fixed.jsonl"
expect_exit 0 "... retried on the mended input" dsk-clean -q --filters none --dedup-db "$T/retry.lmdb" \
    -o "$T/retry.jsonl" "$T/fixed.jsonl"
check "... keeps the documents the failed run had seen (it dropped them as duplicates)" \
    test "$(wc -l < "$T/retry.jsonl")" -eq 2
expect_exit 0 "... and a third run over them" dsk-clean -q --filters none --dedup-db "$T/retry.lmdb" -o "$T/again.jsonl" \
    "$T/fixed.jsonl"
check "... finds them seen, kept by the run that succeeded" test ! -s "$T/again.jsonl"
expect_exit 65 "--dedup-db refuses other settings" dsk-clean -q --dedup exact,minhash --minhash 3,14,8 --dedup-db "$T/dedup.lmdb" "$T/shard2.jsonl"
expect_exit 64 "bad --minhash" dsk-clean --minhash 5,100,8 "$T/docs.jsonl"
expect_exit 70 "--dedup-memory budget" dsk-clean -q --filters none --dedup-memory 1K "$T/split.jsonl"
expect_err_contains "--dedup-db" "budget error suggests --dedup-db"

# ---- files, pipes and signals ------------------------------------------------------------------------------------
echo "not a database" > "$T/notdb"
expect_exit 65 "--dedup-db on a file that is not one" dsk-clean -q --dedup-db "$T/notdb" "$T/docs.jsonl"
check "--dedup-db refused: no lock file left" test ! -e "$T/notdb-lock"
cp "$T/dedup.lmdb" "$T/cut.lmdb" && truncate -s 8192 "$T/cut.lmdb"
expect_exit 65 "--dedup-db cut short (LMDB died of SIGBUS)" dsk-clean -q --dedup-db "$T/cut.lmdb" -o "$T/cut.out" \
    "$T/docs.jsonl"
check "--dedup-db cut short: no output or temporary left" sh -c "! ls '$T' | grep -q '^cut.out'"
# Another tool's LMDB file is not written to.
printf '{"text":"Hello world, a test."}\n' > "$T/one.jsonl"
dsk-bpe train --vocab-size 300 -o "$T/t.json" "$T/docs.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/t.json" -o "$T/one.dskt" "$T/docs.jsonl"
dsk-pack -q -t "$T/t.json" -o "$T/ds" --seq-len 16 "$T/one.dskt"
expect_exit 65 "--dedup-db on a dataset's shard" dsk-clean -q --dedup-db "$T/ds/shard-00000.mdb" "$T/one.jsonl"
expect_exit 0 "the shard is unchanged" dsk-pack verify "$T/ds"
check "no lock file beside the shard" test ! -e "$T/ds/shard-00000.mdb-lock"
mkdir "$T/adir"
expect_exit 65 "--dedup-db on a directory" dsk-clean -q --dedup-db "$T/adir" "$T/docs.jsonl"
check "--dedup-db on a directory: no lock file" test ! -e "$T/adir-lock"
expect_exit 64 "--dedup-db ''" dsk-clean -q --dedup-db '' "$T/docs.jsonl"
expect_exit 66 "missing input" dsk-clean "$T/missing.jsonl"
expect_err_contains "missing.jsonl: cannot open" "missing input is named"
expect_exit 64 "unknown option" dsk-clean --frobnicate
expect_err_contains "unknown option '--frobnicate'" "the unknown option is named"
check "one message for an unknown option" test "$(grep -c . "$T/err")" -eq 2
expect_exit 64 "a missing argument" dsk-clean --stats
expect_err_contains "option '--stats' needs an argument" "the option missing its argument is named"
expect_exit 0 "-o writes atomically" dsk-clean -q -o "$T/clean.jsonl" "$T/docs.jsonl"
check "-o output complete" test "$(wc -l < "$T/clean.jsonl")" -eq 3
check "-o leaves no temporaries" sh -c "! ls '$T' | grep -q 'clean.jsonl.tmp'"
expect_exit 73 "--stats in a missing directory" dsk-clean -q -o "$T/st-out.jsonl" --rejects "$T/st-rej.jsonl" \
    --stats "$T/nodir/stats.json" "$T/docs.jsonl"
check "--stats unwritable: no -o or --rejects file" sh -c "! ls '$T' | grep -q '^st-'"
zstd -q -c "$T/docs.jsonl" > "$T/docs.jsonl.zst" 2>/dev/null || python3 -c 'import sys' 
if [ -s "$T/docs.jsonl.zst" ]; then
    dsk-clean -q "$T/docs.jsonl.zst" > "$T/out"
    check "zstd input is read" cmp -s "$T/out" "$T/clean.jsonl"
    # Cut short by a byte (the frame's end, after the last whole record)
    # and the magic number alone: bad data, not an input that ended.
    head -c $(( $(stat -c %s "$T/docs.jsonl.zst") - 1 )) "$T/docs.jsonl.zst" > "$T/cut.jsonl.zst"
    expect_exit 65 "truncated zstd input" dsk-clean -q -o "$T/cut.jsonl" "$T/cut.jsonl.zst"
    expect_err_contains "truncated" "truncated zstd input is named as such"
    check "truncated zstd input: no -o file" test ! -e "$T/cut.jsonl"
    printf '\050\265\057\375' > "$T/magic.zst"
    expect_exit 65 "zstd magic number alone" dsk-clean -q "$T/magic.zst"
    # pzstd starts its output with a skippable frame (it read as text)
    { printf '\120\052\115\030\004\000\000\000abcd'; cat "$T/docs.jsonl.zst"; } > "$T/skip.jsonl.zst"
    dsk-clean -q "$T/skip.jsonl.zst" > "$T/out"
    check "zstd input that starts with a skippable frame is read" cmp -s "$T/out" "$T/clean.jsonl"
fi
# Outputs named by descriptor, or through a symbolic link
( dsk-clean -q -o /dev/fd/1 "$T/docs.jsonl" > "$T/viafd.jsonl" )
check "-o /dev/fd/1 writes to standard output (it could not create /dev/fd/1.tmp)" cmp -s "$T/viafd.jsonl" "$T/clean.jsonl"
echo keep > "$T/appended"
( dsk-clean -q -o /dev/stdout "$T/docs.jsonl" >> "$T/appended" )
check "-o /dev/stdout appends where the shell opened stdout for appending" \
    sh -c "head -1 '$T/appended' | grep -qx keep && tail -n +2 '$T/appended' | cmp -s - '$T/clean.jsonl'"
ln -s /proc/self/fd/2 "$T/errlink"
dsk-clean -q --stats "$T/errlink" -o /dev/null "$T/docs.jsonl" 2> "$T/stats-err"
check "--stats through a link to /proc/self/fd/2 goes to stderr; the link stays" \
    sh -c "test -L '$T/errlink' && grep -q '\"docs_in\"' '$T/stats-err'"
echo old > "$T/real.jsonl" && ln -s real.jsonl "$T/link.jsonl"
dsk-clean -q -o "$T/link.jsonl" "$T/docs.jsonl"
check "-o through a link replaces the file it names and keeps the link" \
    sh -c "test -L '$T/link.jsonl' && cmp -s '$T/real.jsonl' '$T/clean.jsonl'"
expect_exit 73 "-o a descriptor that is not open" dsk-clean -q -o /dev/fd/9 "$T/docs.jsonl"
for i in $(seq 1 20); do cat "$T/split.jsonl"; done > "$T/big.jsonl"
( dsk-clean -q --filters none --dedup none "$T/big.jsonl" 2>"$T/pipe.err" | head -1 > /dev/null; echo "${PIPESTATUS[0]}" > "$T/pipe.rc" )
check "closed pipe ends quietly" test ! -s "$T/pipe.err"
check "closed pipe: killed by SIGPIPE or exit 0 ($(cat "$T/pipe.rc"))" grep -qx '141\|0' "$T/pipe.rc"
dsk-clean -q --filters none --dedup none -o "$T/sig.jsonl" "$T/big.jsonl" & pid=$!
sleep 0.05; kill -TERM $pid 2>/dev/null; wait $pid
check "SIGTERM leaves no temporaries" sh -c "! ls '$T' | grep -q 'sig.jsonl.tmp'"

echo "1..$tap_n"
