#!/usr/bin/env bash
# CLI tests for dsk-serve: the OpenAI API over HTTP (whole and streamed
# answers, errors as OpenAI's error object, limits, the API key, the
# bounded queue), /health and /metrics, disconnects, concurrency, SIGTERM;
# and the official openai Python client, unchanged, when DSK_PY has it.
. "$(dirname "$0")/lib.sh"

expect_exit 0 "--help" dsk-serve --help
expect_exit 0 "--version" dsk-serve --version
expect_exit 64 "no checkpoint" dsk-serve
expect_exit 66 "a missing checkpoint" dsk-serve "$T/none" --port 0

python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
random.seed(2)
w = "red green blue cat dog sun".split()
with open(f"{t}/chat.jsonl", "w") as f:
    for i in range(300):
        x = random.choice(w)
        f.write(json.dumps({"messages": [{"role": "user", "content": f"say {x}"},
                                         {"role": "assistant", "content": x}]}) + "\n")
PY
dsk-bpe train --vocab-size 280 -o "$T/tok.json" "$T/chat.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/tok.json" -o "$T/chat.dskt" "$T/chat.jsonl"
dsk-pack -q -t "$T/tok.json" -o "$T/ds" --seq-len 32 "$T/chat.dskt"
dsk-train -q -j 2 --config nano --data "$T/ds" --out "$T/ck" -b 8 --steps 40 --lr 3e-3 --warmup 5 --eval-every 0

# start_server NAME ARGS...: starts dsk-serve on a free port; sets $port and $pid
start_server() {
    dsk-serve "$T/ck" --port 0 -j 2 "$@" 2>"$T/serve.err" &
    pid=$!
    port=""
    for _ in $(seq 100); do
        port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$T/serve.err")
        [ -n "$port" ] && break
        sleep 0.1
    done
}
start_server --max-body 4096 --max-batch 2 --max-queue 2 --timeout 60
check "the server announces its port" test -n "$port"
url=http://127.0.0.1:$port

check "HTTP behaviour" python3 - "$url" <<'PY'
import http.client, json, sys, threading, time, urllib.error, urllib.request
url = sys.argv[1]
def call(path, body=None, raw=None, headers=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)
st, body, _ = call("/health"); assert st == 200, (st, body)
st, body, _ = call("/v1/models"); m = json.loads(body)
assert st == 200 and m["object"] == "list" and m["data"][0]["object"] == "model", body
chat = {"model": "m", "messages": [{"role": "user", "content": "say cat"}], "max_tokens": 5}
st, body, _ = call("/v1/chat/completions", chat); r = json.loads(body)
assert st == 200 and r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant", body
u = r["usage"]; assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] and u["completion_tokens"] <= 5, u
assert r["choices"][0]["finish_reason"] in ("stop", "length"), r
# greedy is repeatable; a streamed answer has the same text
st, body2, _ = call("/v1/chat/completions", {**chat, "temperature": 0})
st, body3, _ = call("/v1/chat/completions", {**chat, "temperature": 0})
assert json.loads(body2)["choices"][0]["message"] == json.loads(body3)["choices"][0]["message"]
st, sse, hdr = call("/v1/chat/completions", {**chat, "temperature": 0, "stream": True,
                                            "stream_options": {"include_usage": True}})
assert st == 200 and hdr["Content-Type"].startswith("text/event-stream"), hdr
events = sse.split("\n\n"); assert events[-1] == "" and events[-2] == "data: [DONE]", events[-3:]
chunks = [json.loads(e[6:]) for e in events[:-2]]
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
assert text == json.loads(body2)["choices"][0]["message"]["content"], (text, body2)
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1, chunks[-1]
assert [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"] in ("stop", "length")
st, body, _ = call("/v1/completions", {"model": "m", "prompt": "red green", "max_tokens": 4, "n": 2, "seed": 1,
                                       "temperature": 1.0})
r = json.loads(body); assert st == 200 and r["object"] == "text_completion" and len(r["choices"]) == 2, body
# errors: OpenAI's error object with the right status
def err(st, body, status, param=None):
    e = json.loads(body)["error"]
    assert st == status and set(e) == {"message", "type", "param", "code"} and e["message"], (st, body)
    if param: assert e["param"] == param, e
st, body, _ = call("/v1/chat/completions", raw=b"{not json"); err(st, body, 400)
st, body, _ = call("/v1/chat/completions", {"messages": "hi"}); err(st, body, 400, "messages")
st, body, _ = call("/v1/chat/completions", {**chat, "temperature": "hot"}); err(st, body, 400, "temperature")
st, body, _ = call("/v1/chat/completions", {**chat, "max_tokens": 100000}); err(st, body, 400)
st, body, _ = call("/v1/chat/completions", raw=b"x" * 5000); err(st, body, 413)
st, body, _ = call("/v1/nothing", chat); err(st, body, 404)
st, body, hdr = call("/v1/chat/completions", {**chat, "frobnicate": 1})
assert st == 200 and "frobnicate" in hdr.get("Warning", ""), hdr
# a client that goes away mid-stream: its sequence is cancelled at once
c = http.client.HTTPConnection(url[7:].split(":")[0], int(url.rsplit(":", 1)[1]), timeout=30)
c.request("POST", "/v1/completions", json.dumps({"prompt": "red", "max_tokens": 25, "stream": True,
                                                 "temperature": 1, "stop": ["zzzz"]}), {"Content-Type": "application/json"})
resp = c.getresponse(); resp.read1(10); c.close()
for _ in range(100):
    m = call("/metrics")[1]
    running = [l for l in m.splitlines() if l.startswith("dsk:num_requests_running")]
    if running and float(running[0].split()[-1]) == 0: break
    time.sleep(0.1)
else:
    raise AssertionError("a disconnected stream kept running: " + str(running))
# the queue: 2 slots + 2 waiting; more at once get 429 with Retry-After
codes, lock = [], threading.Lock()
def hit():
    st, body, hdr = call("/v1/completions", {"prompt": "red green blue", "max_tokens": 50, "stop": ["zzzz"],
                                             "temperature": 1})
    with lock: codes.append((st, hdr.get("Retry-After")))
ts = [threading.Thread(target=hit) for _ in range(24)]
[t.start() for t in ts]; [t.join() for t in ts]
assert all(s in (200, 429) for s, _ in codes) and any(s == 429 for s, _ in codes), codes
assert all(ra == "1" for s, ra in codes if s == 429), codes
assert sum(s == 200 for s, _ in codes) >= 2, codes   # how many fit depends on timing: at least the first
# metrics count what was answered
m = call("/metrics")[1]
assert "# TYPE dsk:time_to_first_token_seconds histogram" in m, m[:500]
ok200 = [l for l in m.splitlines() if l.startswith('dsk:requests_total{endpoint="/v1/chat/completions",status="200"}')]
assert ok200 and float(ok200[0].split()[-1]) == 5, ok200   # chat, two greedy, the stream, the warning
PY
kill -TERM "$pid"
wait "$pid"; rc=$?
check "SIGTERM stops the server with status 0" test "$rc" -eq 0

start_server --api-key s3cret
url=http://127.0.0.1:$port
check "the API key is required and checked" python3 - "$url" <<'PY'
import json, sys, urllib.error, urllib.request
url = sys.argv[1]
def st(key):
    h = {"Content-Type": "application/json"}
    if key: h["Authorization"] = "Bearer " + key
    req = urllib.request.Request(url + "/v1/models", headers=h)
    try:
        return urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as e:
        assert json.loads(e.read())["error"]["type"] == "authentication_error"
        return e.code
assert st(None) == 401 and st("wrong") == 401 and st("s3cret0") == 401 and st("s3cret") == 200
assert urllib.request.urlopen(url + "/health", timeout=30).status == 200   # health needs no key
PY
if [ -n "${DSK_PY:-}" ] && "$DSK_PY" -c 'import openai' 2>/dev/null; then
    check "the official openai client works unchanged" "$DSK_PY" - "$url" <<'PY'
import sys
import openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="s3cret")
r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "say dog"}], max_tokens=5)
assert r.choices[0].message.role == "assistant" and r.usage.total_tokens > 0, r
s = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "say dog"}], max_tokens=5,
                              stream=True, stream_options={"include_usage": True})
parts = list(s)
assert parts[-1].usage is not None and parts[-1].usage.completion_tokens >= 1, parts[-1]
r = c.completions.create(model="m", prompt="red", max_tokens=3)
assert r.object == "text_completion" and len(r.choices) == 1, r
assert [m.id for m in c.models.list()], "models"
try:
    c.chat.completions.create(model="m", messages="nope", max_tokens=2)
    raise SystemExit("no error")
except openai.BadRequestError as e:
    assert e.status_code == 400
try:
    openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="bad").models.list()
    raise SystemExit("no error")
except openai.AuthenticationError:
    pass
PY
else
    echo "ok $((tap_n += 1)) # SKIP the openai Python client is not installed (DSK_PY)"
fi
kill -TERM "$pid"; wait "$pid"
expect_exit 69 "a port in use" bash -c "python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(20)' > '$T/p' & sleep 1; dsk-serve '$T/ck' --port \$(cat '$T/p')"
root=$(cd "$(dirname "$0")/../.." && pwd)
if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    check "the Kubernetes manifests and the Prometheus config parse, with probes on /health" /usr/bin/python3 - "$root" <<'PY'
import sys, yaml
root = sys.argv[1]
docs = list(yaml.safe_load_all(open(f"{root}/pipelines/k8s/dsk-serve.yaml")))
kinds = [d["kind"] for d in docs]
assert kinds == ["Deployment", "Service", "HorizontalPodAutoscaler"], kinds
c = docs[0]["spec"]["template"]["spec"]["containers"][0]
assert c["readinessProbe"]["httpGet"]["path"] == "/health" and c["livenessProbe"]["httpGet"]["path"] == "/health"
assert c["args"][0] == "dsk-serve" and "limits" in c["resources"]
p = yaml.safe_load(open(f"{root}/pipelines/k8s/prometheus.yml"))
assert p["scrape_configs"][0]["metrics_path"] == "/metrics"
PY
else
    echo "ok $((tap_n += 1)) # SKIP python3-yaml is not installed"
fi
echo "1..$tap_n"
