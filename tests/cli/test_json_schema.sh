#!/usr/bin/env bash
# JSON schemas (lib/text/json_schema.h): every text the automaton accepts
# whole under a schema is valid against it, by the Python jsonschema
# package's Draft 2020-12 validator (an implementation that shares nothing
# with ours).  tests/tools/json_walk writes random texts the automaton
# accepts (and fails if a walk ever reaches a state no byte can leave);
# each must parse and validate.  The unit tests check the other
# direction (valid texts are taken) on chosen cases.
. "$(dirname "$0")/lib.sh"

# the release build's tool (sanitizer builds have no test tools)
walk=$(dirname "$DSK_BIN" | sed 's|/san$||')/tests/tools/json_walk
py=""
for p in "${DSK_PY:-}" python3 /usr/bin/python3; do
    if [ -n "$p" ] && "$p" -c 'import jsonschema' 2>/dev/null; then py=$p; break; fi
done
if [ ! -x "$walk" ] || [ -z "$py" ]; then
    echo "ok 1 # SKIP json_walk (make check builds it) or Python's jsonschema is missing"
    exit 0
fi

cat > "$T/person.json" <<'J'
{"type": "object", "additionalProperties": false, "required": ["name", "age"],
 "properties": {
   "name": {"type": "string", "minLength": 1, "maxLength": 8},
   "age": {"type": "integer"},
   "tags": {"type": "array", "items": {"enum": ["a", "b", 3, null, {"k": [1, 2]}]}, "minItems": 1, "maxItems": 3},
   "kind": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "number"}, {"type": "null"}]},
   "pet": {"type": ["object", "null"], "properties": {"n": {"const": "x\"y"}}, "required": ["n"]},
   "ok": {"type": "boolean"},
   "caf\u00e9": {"type": "number"}}}
J
cat > "$T/tree.json" <<'J'
{"$defs": {"node": {"type": "object", "required": ["v"], "additionalProperties": false,
                    "properties": {"v": {"type": "integer"},
                                   "kids": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}}}}},
 "$ref": "#/$defs/node"}
J
cat > "$T/free.json" <<'J'
{"type": "object", "additionalProperties": {"type": ["string", "array"], "items": {"type": "number"}}}
J
cat > "$T/scalars.json" <<'J'
{"type": "array", "items": {"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 2}, {"enum": [true]}]}}
J
cat > "$T/empty.json" <<'J'
{"type": "object", "properties": {}, "additionalProperties": false}
J
# keywords without a type (any kind, each held to its own), recursion that
# must stop at the depth limit, surrogate pairs in counted strings
cat > "$T/untyped.json" <<'J'
{"type": "object", "properties": {"a": {"$ref": "#"}, "s": {"minLength": 2, "maxLength": 3},
 "arr": {"maxItems": 2, "items": {"type": "string", "minLength": 1, "maxLength": 1}},
 "e": {"enum": [[[[1]]], "x"]}, "no": false}}
J
for s in person tree free scalars empty untyped; do
    if "$walk" "$T/$s.json" 7 300 > "$T/$s.out" 2> "$T/$s.err"; then ok "json_walk: 300 texts under $s.json"
    else not_ok "json_walk: 300 texts under $s.json" "$(cat "$T/$s.err")"; fi
done
# keys in the order of the properties (dsk-serve's response_format, and
# strict tools): as valid, and in that order
for s in person tree untyped; do
    cp "$T/$s.json" "$T/$s-ordered.json"
    if "$walk" "$T/$s-ordered.json" 7 300 ordered > "$T/$s-ordered.out" 2> "$T/$s-ordered.err"; then
        ok "json_walk: 300 texts under $s.json, keys in order"
    else not_ok "json_walk: 300 texts under $s.json, keys in order" "$(cat "$T/$s-ordered.err")"; fi
done
"$walk" - 7 300 > "$T/any.out" 2> "$T/any.err"
check "json_walk: 300 texts without a schema" test -s "$T/any.out"

check "every text is valid JSON and valid against its schema (jsonschema, Draft 2020-12)" "$py" - "$T" <<'PY'
import json, sys
from jsonschema import Draft202012Validator
t = sys.argv[1]
bad = 0
def in_order(doc, schema, defs):
    """Whether every object's keys come in the order of its schema's properties."""
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].split("/")[-1], top) if schema["$ref"] != "#" else top
    if isinstance(doc, dict) and "properties" in schema:
        order = list(schema["properties"])
        if [order.index(k) for k in doc] != sorted(order.index(k) for k in doc):
            return False
        return all(in_order(v, schema["properties"][k], defs) for k, v in doc.items()
                   if isinstance(schema["properties"][k], dict))
    if isinstance(doc, list) and isinstance(schema.get("items"), dict):
        return all(in_order(v, schema["items"], defs) for v in doc)
    return True
for name in ["person", "tree", "free", "scalars", "empty", "untyped", "any",
             "person-ordered", "tree-ordered", "untyped-ordered"]:
    schema = {} if name == "any" else json.load(open(f"{t}/{name}.json"))
    top = schema
    v = Draft202012Validator(schema)
    texts = [json.loads(line) for line in open(f"{t}/{name}.out")]
    assert len(texts) == 300, (name, len(texts))
    seen_keys = set()
    for text in texts:
        doc = json.loads(text)        # whole JSON
        errs = list(v.iter_errors(doc))
        if errs:
            bad += 1
            print(f"# {name}: {text!r}: {errs[0].message}")
        if isinstance(doc, dict):
            seen_keys |= set(doc)
        if name.endswith("-ordered") and not in_order(doc, schema, schema.get("$defs", {})):
            bad += 1
            print(f"# {name}: {text!r}: keys out of the properties' order")
    if name.startswith("person"):    # the walk reaches every property
        assert seen_keys == set(schema["properties"]), seen_keys
sys.exit(1 if bad else 0)
PY
