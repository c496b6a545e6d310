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
expect_exit 64 "an empty --model-name" dsk-serve "$T/none" --port 0 --model-name ""

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
dsk-train -q -j 2 --config nano --data "$T/ds" --out "$T/ck" -b 8 --steps 200 --lr 3e-3 --warmup 5 --eval-every 0

# start_server ARGS...: starts dsk-serve on a free port; sets $port and $pid
start_server() {
    launch_server "$@"
    # Twice in some thirty clean-clone CI runs a server here printed nothing
    # for a minute while it ran (cause unknown; thousands of starts here,
    # loaded or not, never did).  Such a start is described (what each of
    # its threads waits in, and gdb's stacks where gdb is installed) on a
    # "# warning:" line that tests/run-all shows for a passing suite too,
    # then killed and made once more: the suite tests the server, not this.
    if [ -z "$port" ] && [ ! -s "$T/serve.err" ] && kill -0 "$pid" 2>/dev/null; then
        echo "# warning: start_server $*: dsk-serve (pid $pid) printed nothing in 60 s; started again"
        describe_process "$pid" | sed 's/^/# warning:   /'
        kill -KILL "$pid"; wait "$pid" 2>/dev/null
        launch_server "$@"
    fi
    # (not ready: what it said, and whether it still runs, for the check
    # that fails next)
    if ! grep -q "ready:" "$T/serve.err"; then
        echo "# start_server $*: not ready after 60 s; $(kill -0 "$pid" 2>/dev/null && echo running || echo exited)"
        sed 's/^/#   /' "$T/serve.err"
    fi
}
launch_server() {
    dsk-serve "${ckpt:-$T/ck}" --port 0 -j 2 "$@" 2>"$T/serve.err" &
    pid=$!
    port=""
    # Listening at once; ready once the model is loaded (up to a minute:
    # an ASan build on a loaded 2-core machine is slow to start).
    for _ in $(seq 600); do
        grep -q "ready:" "$T/serve.err" && break
        sleep 0.1
    done
    port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$T/serve.err")
}
# describe_process PID: its command line, and each thread's state, wait
# channel and system call
describe_process() {
    ps -o pid=,stat=,etime=,args= -p "$1"
    local t
    for t in /proc/"$1"/task/*; do
        echo "thread ${t##*/} $(cat "$t/comm" 2>/dev/null) state $(cut -d' ' -f3 "$t/stat" 2>/dev/null)" \
            "wchan $(cat "$t/wchan" 2>/dev/null) syscall $(cut -d' ' -f1 "$t/syscall" 2>/dev/null)"
    done
    command -v gdb >/dev/null && timeout 60 gdb -q -batch -p "$1" -ex "thread apply all bt" 2>&1 | grep -E '^(Thread|#)'
}
expect_exit 64 "a KV budget that holds no sequence" dsk-serve "$T/ck" --port 0 --kv-memory 1K
expect_exit 64 "--ctx past the model's positions" dsk-serve "$T/ck" --port 0 --ctx 100000
expect_err_contains "max_position_embeddings" "--ctx: the model's limit is named"
expect_exit 64 "--max-connections 0" dsk-serve "$T/ck" --port 0 --max-connections 0
expect_exit 64 "--idle-timeout 0" dsk-serve "$T/ck" --port 0 --idle-timeout 0
start_server --max-batch 8 --kv-memory 50K
check "the KV budget lowers the batch (3 sequences of 64 tokens in 50 KiB)" grep -q "ready: .*, 3 sequences of up to 64 tokens, KV cache 0.0 MiB" "$T/serve.err"
check "the ready line names the step directory served, not the run's latest link" grep -q "ready: $T/ck/step-00000200, " "$T/serve.err"
kill -TERM "$pid"; wait "$pid"
start_server --max-body 4096 --max-batch 2 --max-queue 2 --timeout 60
check "the server announces its port" test -n "$port"
url=http://127.0.0.1:$port

check "HTTP behaviour" python3 - "$url" <<'PY'
import http.client, json, re, sys, threading, time, urllib.error, urllib.request
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
st, body, _ = call("/v1/models/" + m["data"][0]["id"])   # one model, as the client's models.retrieve asks
assert st == 200 and json.loads(body) == m["data"][0], body
st, body, _ = call("/v1/models/no-such-model")
assert st == 404 and json.loads(body)["error"]["code"] == "model_not_found", body
for path, method, allow in (("/v1/models", "DELETE", "GET, HEAD"), ("/v1/completions", "GET", "POST"),
                            ("/health", "POST", "GET, HEAD"), ("/metrics", "PUT", "GET, HEAD"), ("/", "POST", "GET, HEAD")):
    try:
        urllib.request.urlopen(urllib.request.Request(url + path, method=method), timeout=60); raise AssertionError(path)
    except urllib.error.HTTPError as e:
        assert e.code == 405 and e.headers.get("Allow") == allow, (path, e.code, dict(e.headers))
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
# the time per output token: the gaps between each choice's own tokens (n x (tokens - 1)), not between
# choices decoded in one step
def tpot_count():
    return [float(l.split()[-1]) for l in call("/metrics")[1].splitlines()
            if l.startswith("dsk:time_per_output_token_seconds_count")][0]
before = tpot_count()
st, body, _ = call("/v1/completions", {"prompt": "red", "max_tokens": 5, "n": 2, "ignore_eos": True, "temperature": 1})
assert st == 200 and all(c["finish_reason"] == "length" for c in json.loads(body)["choices"]), body
assert tpot_count() - before == 2 * 4, (before, tpot_count())
# ... and the gap to the end token that stops an answer, which completion_tokens counts
ends = 0
for x in "red green blue cat dog sun".split():
    before = tpot_count()
    st, body, _ = call("/v1/chat/completions", {"messages": [{"role": "user", "content": f"say {x}"}],
                                                "max_tokens": 16, "temperature": 0})
    r = json.loads(body)
    if r["choices"][0]["finish_reason"] == "stop":
        ends += 1
        assert tpot_count() - before == r["usage"]["completion_tokens"] - 1, (before, tpot_count(), r)
assert ends >= 3, ends   # the model learnt to end its answers
# logprobs: one entry per generated token, whose texts make up the answer;
# greedy picks the best alternative; a stream reports the same values
lp = {**chat, "temperature": 0, "max_tokens": 6, "logprobs": True, "top_logprobs": 3}
st, body, _ = call("/v1/chat/completions", lp); r = json.loads(body); c0 = r["choices"][0]
content = c0["logprobs"]["content"]
assert st == 200 and c0["message"]["content"] == "cat" and c0["finish_reason"] == "stop", body   # it learnt that
assert "".join(t["token"] for t in content) == c0["message"]["content"], body
assert len(content) == r["usage"]["completion_tokens"] - (c0["finish_reason"] == "stop"), body
for t in content:
    tops = t["top_logprobs"]
    assert len(tops) == 3 and t["logprob"] <= 0 and bytes(t["bytes"]).decode() == t["token"], t
    assert tops[0]["token"] == t["token"] and abs(tops[0]["logprob"] - t["logprob"]) < 1e-6, t
    assert tops[0]["logprob"] >= tops[1]["logprob"] >= tops[2]["logprob"], t
st, body, _ = call("/v1/chat/completions", {**chat, "temperature": 0})
assert json.loads(body)["choices"][0]["logprobs"] is None, body
st, sse, _ = call("/v1/chat/completions", {**lp, "stream": True})
chunks = [json.loads(e[6:]) for e in sse.split("\n\n")[:-2]]
streamed = [t for c in chunks for t in ((c["choices"][0].get("logprobs") or {}).get("content") or [])]
assert streamed == content, (streamed, content)
tpl = "<|user|>say red<|end|><|assistant|>"   # special-token text in a completion prompt is the token
st, body, _ = call("/v1/completions", {"prompt": tpl, "max_tokens": 5, "logprobs": 2, "temperature": 0})
c0 = json.loads(body)["choices"][0]; l = c0["logprobs"]
special = lambda t: t.startswith("<|") and t.endswith("|>")   # listed by name, adding no text (the end token too)
text_of_tokens = [x for x in l["tokens"] if not special(x)]
assert st == 200 and "".join(text_of_tokens) == c0["text"] and len(l["tokens"]) == len(l["token_logprobs"]), body
assert len(l["tokens"]) == json.loads(body)["usage"]["completion_tokens"], body   # one entry a generated token
assert l["text_offset"] == [sum(len(x) for x in l["tokens"][:i] if not special(x)) for i in range(len(l["tokens"]))], l
assert all(len(tp) <= 2 and max(tp.values()) >= lp_ - 1e-6 for tp, lp_ in zip(l["top_logprobs"], l["token_logprobs"])), l
assert len(l["tokens"]) >= 1, l
st, sse, _ = call("/v1/completions", {"prompt": tpl, "max_tokens": 5, "logprobs": 2, "temperature": 0,
                                      "stream": True})
chunks = [json.loads(e[6:])["choices"][0] for e in sse.split("\n\n")[:-2]]
for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
    assert [x for c in chunks for x in (c["logprobs"] or {}).get(key, [])] == l[key], (key, chunks, l)
# sampled text, perhaps cut mid-character, past the end of the turn: every listed token is text (a part
# of a character as OpenAI's legacy API wrote it, "bytes:\\xNN"), and text_offset is where it begins in the
# text as written (invalid UTF-8 repaired); top_logprobs has as many entries as asked, partial tokens too
partial = lambda tok: tok.startswith("bytes:")
for seed in range(12):
    c0 = json.loads(call("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 1.3,
                                             "seed": seed, "ignore_eos": True, "logprobs": 5})[1])["choices"][0]
    l, t = c0["logprobs"], c0["text"]
    assert all(tok == t[o:o + len(tok)] for tok, o in zip(l["tokens"], l["text_offset"])
               if not partial(tok) and not special(tok)), c0
    assert all(re.fullmatch(r"bytes:(\\x[0-9a-f]{2})+", tok) for tok in l["tokens"] if "\\x" in tok), c0
    assert l["text_offset"] == sorted(l["text_offset"]) and all(o <= len(t) for o in l["text_offset"]), c0
    assert any(map(partial, l["tokens"])) or "".join(l["tokens"]) == t, c0
    assert all(len(tp) == 5 for tp in l["top_logprobs"]), c0
# a completion ends with the turn, as a chat does, and special tokens are not text
st, body, _ = call("/v1/completions", {"prompt": tpl, "max_tokens": 20, "temperature": 0})
r = json.loads(body); c0 = r["choices"][0]
assert st == 200 and c0["finish_reason"] == "stop" and "<|" not in c0["text"] and r["usage"]["prompt_tokens"] < 10, body
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
# A body announced over --max-body, by a client that waits for 100 Continue, is answered at once.
import socket
sk = socket.create_connection((url[7:].split(":")[0], int(url.rsplit(":", 1)[1])), timeout=10)
sk.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 100000000\r\nExpect: 100-continue\r\n\r\n")
reply = sk.recv(4096); sk.close()
assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
# Two Content-Length headers that differ: 400 (the body's end is in doubt); the same twice is one.
body1 = b'{"prompt": "red", "max_tokens": 1}'
for lengths, status in (((40, len(body1)), b"400"), ((len(body1), 40), b"400"), ((len(body1), len(body1)), b"200")):
    sk = socket.create_connection((url[7:].split(":")[0], int(url.rsplit(":", 1)[1])), timeout=10)
    sk.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
               b"".join(b"Content-Length: %d\r\n" % n for n in lengths) + b"\r\n" + body1)
    reply = sk.recv(4096); sk.close()
    assert reply.startswith(b"HTTP/1.1 " + status), (lengths, reply[:300])
# Transfer-Encoding beside Content-Length: 400 and the connection closed (RFC 9112, 6.1; it was served and
# kept open, a request smuggling case).
chunked = b"%x\r\n" % len(body1) + body1 + b"\r\n0\r\n\r\n"
sk = socket.create_connection((url[7:].split(":")[0], int(url.rsplit(":", 1)[1])), timeout=10)
sk.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
reply = b""
while True:
    got = sk.recv(4096)
    if not got:
        break
    reply += got
sk.close()
assert reply.startswith(b"HTTP/1.1 400") and reply.count(b"HTTP/1.1") == 1, reply[:300]
# A target in absolute form is its path (RFC 9112, 3.2.2: it was a 404).
sk = socket.create_connection((url[7:].split(":")[0], int(url.rsplit(":", 1)[1])), timeout=10)
sk.sendall(b"GET " + url.encode() + b"/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
reply = sk.recv(4096); sk.close()
assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
# HEAD: the GET endpoints without their bodies.
for path in ("/health", "/metrics", "/v1/models"):
    with urllib.request.urlopen(urllib.request.Request(url + path, method="HEAD"), timeout=60) as r:
        assert r.status == 200 and r.read() == b"", (path, r.status)
st, body, _ = call("/v1/nothing", chat); err(st, body, 404)
st, body, hdr = call("/v1/chat/completions", {**chat, "frobnicate": 1})
assert st == 200 and "frobnicate" in hdr.get("Warning", ""), hdr
# a client that goes away mid-stream: its sequence is cancelled at once
c = http.client.HTTPConnection(url[7:].split(":")[0], int(url.rsplit(":", 1)[1]), timeout=30)
c.request("POST", "/v1/completions", json.dumps({"prompt": "red", "max_tokens": 25, "stream": True,
                                                 "temperature": 1, "ignore_eos": True}), {"Content-Type": "application/json"})
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
    st, body, hdr = call("/v1/completions", {"prompt": "red green blue", "max_tokens": 50, "ignore_eos": True,
                                             "temperature": 1})
    with lock: codes.append((st, hdr.get("Retry-After")))
ts = [threading.Thread(target=hit) for _ in range(24)]
[t.start() for t in ts]; [t.join() for t in ts]
assert all(s in (200, 429) for s, _ in codes) and any(s == 429 for s, _ in codes), codes
assert all(ra == "1" for s, ra in codes if s == 429), codes
assert sum(s == 200 for s, _ in codes) >= 2, codes   # how many fit depends on timing: at least the first
# more choices than the queue ever holds: 400 naming n (a 429 would be retried for ever), and not counted
before = call("/metrics")[1]
st, body, _ = call("/v1/completions", {"prompt": "a", "max_tokens": 2, "n": 3})
err = json.loads(body)["error"]
assert st == 400 and err["param"] == "n" and err["type"] == "invalid_request_error", (st, body)
after = call("/metrics")[1]
count = lambda m, name: sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith(name))
assert count(after, "dsk:prompt_tokens_total") == count(before, "dsk:prompt_tokens_total"), after
assert count(after, "dsk:request_success_total") == count(before, "dsk:request_success_total"), after
# metrics count what was answered
m = call("/metrics")[1]
assert "# TYPE dsk:time_to_first_token_seconds histogram" in m, m[:500]
ok200 = [l for l in m.splitlines() if l.startswith('dsk:requests_total{endpoint="/v1/chat/completions",status="200"}')]
# chat, two greedy, a stream, the six "say X", 3 logprobs, the warning
assert ok200 and float(ok200[0].split()[-1]) == 14, ok200
PY
# Slow clients: a body that trickles in is read whole; a stream nobody
# reads for a while neither blocks the other requests nor loses tokens.
check "slow clients" python3 - "$url" <<'PY'
import json, socket, sys, time, urllib.request
url = sys.argv[1]; host, port = url[7:].split(":")
def raw(body, pieces=1, pause=0.0):
    s = socket.create_connection((host, int(port)), timeout=60)
    b = body.encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
              b"Content-Length: " + str(len(b)).encode() + b"\r\n\r\n")
    step = (len(b) + pieces - 1) // pieces
    for i in range(0, len(b), step):
        time.sleep(pause); s.sendall(b[i:i + step])
    return s
def read_all(s):
    out = b""
    while chunk := s.recv(65536): out += chunk
    s.close(); return out.decode()
r = read_all(raw(json.dumps({"prompt": "red", "max_tokens": 3, "ignore_eos": True}), pieces=3, pause=0.3))
assert r.startswith("HTTP/1.1 200") and '"completion_tokens":3' in r, r[:300]
slow = raw(json.dumps({"prompt": "red", "max_tokens": 40, "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}}))
time.sleep(0.2)
t0 = time.time()
req = urllib.request.Request(url + "/v1/completions", json.dumps({"prompt": "green", "max_tokens": 5}).encode(),
                             {"Content-Type": "application/json"})
assert urllib.request.urlopen(req, timeout=30).status == 200
assert time.time() - t0 < 5, "a stream nobody reads held up another request"
time.sleep(1)
r = read_all(slow)
events = [e for e in r.split("\r\n\r\n", 1)[1].split("\n\n") if e.startswith("data: ")] if "\r\n\r\n" in r else []
assert events and events[-1] == "data: [DONE]", r[-300:]
assert json.loads(events[-2][6:])["usage"]["completion_tokens"] == 40, events[-2]
PY
# The chat page in a real browser: headless Chromium types a question and
# the streamed reply appears (Debian's chromium and chromium-driver, and
# selenium in the test Python).
if command -v chromedriver >/dev/null && [ -n "${DSK_PY:-}" ] && "$DSK_PY" -c 'import selenium' 2>/dev/null; then
    check "the chat page streams a reply in headless Chromium" "$DSK_PY" - "$url" <<'PY'
import sys
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
o = webdriver.ChromeOptions()
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
    o.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
try:
    d.get(sys.argv[1] + "/?temperature=0")
    assert d.title == "dsk-serve", d.title
    d.find_element(By.ID, "q").send_keys("say cat")
    d.find_element(By.ID, "send").click()
    WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "reply-1").get_attribute("data-done") == "1")
    assert d.find_element(By.CSS_SELECTOR, "#log .user").text == "say cat"
    reply = d.find_element(By.ID, "reply-1").text
    assert reply == "cat", repr(reply)   # greedy: what the API answered above
finally:
    d.quit()
PY
else
    echo "ok $((tap_n += 1)) # SKIP chromium-driver or selenium (in DSK_PY) is not installed"
fi
kill -TERM "$pid"
wait "$pid"; rc=$?
check "SIGTERM stops the server with status 0" test "$rc" -eq 0

# A client that gives up on a whole (non-streamed) answer: one slot, eight
# long choices queued behind each other (a model with a long context);
# closing the connection cancels them all within a fraction of a second.
dsk-train -q -j 2 --config nano --set seq_len=1024 --data "$T/ds" --out "$T/ck-long" -b 8 --steps 2 --eval-every 0
ckpt=$T/ck-long start_server --max-batch 1 --max-queue 16
url=http://127.0.0.1:$port
check "a client disconnect cancels a non-streamed request" python3 - "$url" <<'PY'
import json, socket, sys, time, urllib.request
url = sys.argv[1]; host, port = url[7:].split(":")
body = json.dumps({"prompt": "red", "max_tokens": 1000, "n": 8, "temperature": 1, "ignore_eos": True}).encode()
s = socket.create_connection((host, int(port)))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
          + str(len(body)).encode() + b"\r\n\r\n" + body)
def gauge(name):
    m = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith(name)), m
for _ in range(50):
    if gauge("dsk:num_requests_running")[0] > 0: break
    time.sleep(0.02)
s.close()
t0 = time.time()
while time.time() - t0 < 5:
    run, m = gauge("dsk:num_requests_running")
    wait, _ = gauge("dsk:num_requests_waiting")
    if run == 0 and wait == 0 and 'status="499"} 1' in m: break
    time.sleep(0.05)
assert run == 0 and wait == 0, (run, wait)
assert 'status="499"} 1' in m, [l for l in m.splitlines() if "requests_total" in l]
PY
kill -TERM "$pid"; wait "$pid"

# Load: rounds of 48 concurrent streams and whole answers on loopback.
# Nothing fails, every stream is complete, the resident memory after the
# last round is where it was after the second (no leak per request), and
# /metrics counts exactly what was sent and received.
start_server --max-batch 8 --max-queue 256 --json-compact
url=http://127.0.0.1:$port
check "load: concurrent streams all succeed, memory stays flat, metrics match" python3 - "$url" "$pid" "${DSK_SAN:-}" <<'PY'
import http.client, json, sys, threading
url, pid, san = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = url[7:].split(":")
rounds, clients = (3, 16) if san else (6, 48)
totals = {"requests": 0, "prompt": 0, "completion": 0}
lock, failures = threading.Lock(), []
def one(i):
    stream = i % 3 != 0
    body = {"prompt": "red green" + " blue" * (i % 5), "max_tokens": 8 + i % 9, "temperature": 1, "seed": i,
            "ignore_eos": i % 2 == 0}
    if stream: body.update(stream=True, stream_options={"include_usage": True})
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=120)
        c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse(); data = r.read().decode(); c.close()
        assert r.status == 200, (r.status, data)
        if stream:
            ev = data.split("\n\n"); assert ev[-2] == "data: [DONE]", ev[-3:]
            usage = json.loads(ev[-3][6:])["usage"]
        else:
            usage = json.loads(data)["usage"]
        assert 1 <= usage["completion_tokens"] <= body["max_tokens"], usage
        assert usage["completion_tokens"] == body["max_tokens"] or not body["ignore_eos"], usage
        with lock:
            totals["requests"] += 1; totals["prompt"] += usage["prompt_tokens"]
            totals["completion"] += usage["completion_tokens"]
    except Exception as e:
        with lock: failures.append(repr(e))
def rss_kib():
    return int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
rss = []
for k in range(rounds):
    ts = [threading.Thread(target=one, args=(k * clients + i,)) for i in range(clients)]
    [t.start() for t in ts]; [t.join() for t in ts]
    rss.append(rss_kib())
assert not failures, failures[:5]
assert totals["requests"] == rounds * clients, totals
# the first rounds warm the allocator's arenas; from the second on, flat
# (ASan's quarantine holds freed memory on purpose: there, leaks are its own check)
growth = rss[-1] - rss[1]
assert san or growth < 3072, f"resident memory grew {growth} KiB over {rounds - 2} rounds: {rss}"
c = http.client.HTTPConnection(host, int(port), timeout=30); c.request("GET", "/metrics")
m = {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in c.getresponse().read().decode().splitlines()
     if l and not l.startswith("#")}
assert m['dsk:requests_total{endpoint="/v1/completions",status="200"}'] == totals["requests"], m
assert m["dsk:prompt_tokens_total"] == totals["prompt"], (m["dsk:prompt_tokens_total"], totals)
assert m["dsk:generation_tokens_total"] == totals["completion"], (m["dsk:generation_tokens_total"], totals)
assert m["dsk:e2e_request_latency_seconds_count"] == totals["requests"], m
assert m["dsk:num_requests_running"] == 0 and m["dsk:num_requests_waiting"] == 0, m
print(f"# {totals['requests']} requests, {totals['completion']} tokens, RSS {rss[0]} -> {rss[-1]} KiB")
PY
# A request's n choices read their prompt once: the others take its keys
# and values (dsk:prefix_cache_hits_total counts them), and answer as if
# each had read it (greedy: the same text).
check "n choices of one prompt read it once (prefix cache hits)" python3 - "$url" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
def metric(name):
    m = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith(name + " "))
h0, q0 = metric("dsk:prefix_cache_hits_total"), metric("dsk:prefix_cache_queries_total")
body = {"prompt": " ".join(["say red green blue cat dog sun"] * 4), "max_tokens": 4, "n": 3, "temperature": 0,
        "ignore_eos": True}
req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
r = json.loads(urllib.request.urlopen(req, timeout=60).read())
n = r["usage"]["prompt_tokens"]
assert n > 17, n
texts = {c["text"] for c in r["choices"]}
assert len(r["choices"]) == 3 and len(texts) == 1, r
h1, q1 = metric("dsk:prefix_cache_hits_total"), metric("dsk:prefix_cache_queries_total")
assert q1 - q0 == 3 * n and h1 - h0 == 2 * (n - 1), (n, h1 - h0, q1 - q0)
PY
# JSON mode: the answer is one JSON object (whole when it ends "stop", the
# beginning of one when it ends "length"), also streamed and sampled; with
# a schema, each whole answer validates against it (Python's jsonschema,
# where DSK_PY or python3 has it); a schema outside the subset is refused
# by name, not ignored.  This server has --json-compact: no whitespace
# outside strings.
check "response_format json_object: the answers are JSON" python3 - "$url" <<'PY'
import json, re, sys, urllib.error, urllib.request
url = sys.argv[1]
def compact(text):   # no whitespace once the strings are taken out
    return not re.search(r"\s", re.sub(r'"(?:[^"\\]|\\.)*"', "", text))
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        r = urllib.request.urlopen(req, timeout=60)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
stopped = 0
for seed in range(6):
    st, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "say red"}],
                 "response_format": {"type": "json_object"}, "max_tokens": 48, "seed": seed,
                 "temperature": 0 if seed == 0 else 1.0})
    assert st == 200, (st, b)
    c = json.loads(b)["choices"][0]
    text = c["message"]["content"]
    assert compact(text), text
    if c["finish_reason"] == "stop":
        assert isinstance(json.loads(text), dict), text
        stopped += 1
    else:
        # cut short: the unit tests check it is a beginning of JSON byte by byte
        assert c["finish_reason"] == "length" and text.lstrip().startswith("{"), c
# the same streamed: the chunks join to the same text as the whole answer
body = {"messages": [{"role": "user", "content": "say dog"}], "response_format": {"type": "json_object"},
        "max_tokens": 48, "seed": 3, "temperature": 1.0}
st, whole = post("/v1/chat/completions", body)
st2, streamed = post("/v1/chat/completions", dict(body, stream=True))
assert st == 200 and st2 == 200
joined = "".join(json.loads(l[6:])["choices"][0]["delta"].get("content", "") for l in streamed.splitlines()
                 if l.startswith("data: {") and json.loads(l[6:])["choices"])
assert joined == json.loads(whole)["choices"][0]["message"]["content"], (joined, whole)
# completions take it too; "text" is the default
st, b = post("/v1/completions", {"prompt": "say", "response_format": {"type": "json_object"}, "max_tokens": 32,
                                 "temperature": 0})
assert st == 200 and json.loads(b)["choices"][0]["text"].lstrip().startswith("{"), b
st, b = post("/v1/completions", {"prompt": "say", "response_format": {"type": "text"}, "max_tokens": 2})
assert st == 200 and "response_format" not in b, b
schema = {"type": "object", "additionalProperties": False, "required": ["color", "n"],
          "properties": {"color": {"enum": ["red", "green", "blue"]}, "n": {"type": "integer"},
                         "words": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2},
                         "note": {"type": ["string", "null"], "maxLength": 8}}}
try:
    from jsonschema import Draft202012Validator
    validate = lambda doc: not list(Draft202012Validator(schema).iter_errors(doc))
except ImportError:   # without the package: the required keys and the enum at least
    validate = lambda doc: set(doc) >= {"color", "n"} and doc["color"] in ("red", "green", "blue")
stopped_schema = 0
for seed in range(8):
    st, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "say blue"}], "seed": seed,
                 "response_format": {"type": "json_schema", "json_schema": {"name": "c", "strict": True,
                                                                              "schema": schema}},
                 "max_tokens": 56, "temperature": 0 if seed == 0 else 1.0})
    assert st == 200, (st, b)
    c = json.loads(b)["choices"][0]
    text = c["message"]["content"]
    assert compact(text), text
    if c["finish_reason"] == "stop":
        doc = json.loads(text)
        assert validate(doc), text
        # keys in the order the properties are listed, as OpenAI's Structured Outputs write them
        order = [list(schema["properties"]).index(k) for k in doc]
        assert order == sorted(order), text
        stopped_schema += 1
    else:
        assert c["finish_reason"] == "length" and text.lstrip().startswith("{"), c
# a schema that leaves only whitespace to choose closes every time
forced = {"type": "object", "properties": {"c": {"enum": ["red", "blue"]}}, "required": ["c"],
          "additionalProperties": False}
for seed in range(4):
    st, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "say red"}], "seed": seed,
                 "response_format": {"type": "json_schema", "json_schema": {"name": "f", "schema": forced}},
                 "max_tokens": 56, "temperature": 1.0})
    c = json.loads(b)["choices"][0]
    assert st == 200 and c["finish_reason"] == "stop", b
    assert json.loads(c["message"]["content"])["c"] in ("red", "blue"), c
# a number at the top: the model's end token ends it (more digits could follow)
st, b = post("/v1/completions", {"prompt": "say", "max_tokens": 16, "temperature": 0,
             "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "integer"}}}})
t = json.loads(b)["choices"][0]
assert st == 200 and (t["finish_reason"] == "length" or isinstance(json.loads(t["text"]), int)), b
for bad, code in [({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a"}}},
                   "invalid_value"),
                  ({"type": "xml"}, "invalid_value"), ({}, "missing_required_parameter"), ("json", "invalid_type")]:
    st, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "response_format": bad})
    err = json.loads(b)["error"]
    assert st == 400 and err["code"] == code and err["param"].startswith("response_format"), (bad, st, b)
st, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "response_format":
             {"type": "json_schema", "json_schema": {"schema": {"minimum": 1}}}})
assert st == 400 and "'minimum' is not supported" in json.loads(b)["error"]["message"], b
print(f"# {stopped} of 6 chat answers closed their object in 48 tokens; {stopped_schema} of 8 under a schema "
      f"in 56")
PY
kill -TERM "$pid"; wait "$pid"

# Forced tool calls (tool_choice names a function, or is "required"): the
# answer is the template's calls, the tools described in its prompt (no room
# for them in the 64-token model: the long one serves, barely trained, so
# the constraint alone makes its calls whole and valid), each call's
# arguments under its function's parameters; streamed, an event names each
# call and the later ones add its arguments.
ckpt=$T/ck-long start_server --max-batch 4
check "forced tool calls: the template's calls, held to the parameters, whole and streamed" python3 - "http://127.0.0.1:$port" <<'PY'
import json, sys, urllib.error, urllib.request
url = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        r = urllib.request.urlopen(req, timeout=60)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
try:
    from jsonschema import Draft202012Validator
    validate_params = lambda doc: not list(Draft202012Validator(params).iter_errors(doc))
except ImportError:   # without the package: the required key, its enum and no others
    validate_params = lambda doc: doc.get("color") in ("red", "blue") and set(doc) <= {"color", "n"}
# a forced tool call: the template's call, its arguments under the function's parameters, as OpenAI's tool_calls
params = {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}, "n": {"type": "integer", "enum": [1, 2, 3]}},
          "required": ["color"], "additionalProperties": False}
tools = [{"type": "function", "function": {"name": "paint", "description": "paint it", "parameters": params}},
         {"type": "function", "function": {"name": "noop"}}]
calls = 0
for seed in range(3):
    body = {"messages": [{"role": "user", "content": "say red"}], "tools": tools, "seed": seed, "max_tokens": 128,
            "tool_choice": {"type": "function", "function": {"name": "paint"}}, "temperature": 1.0}
    st, b = post("/v1/chat/completions", body)
    assert st == 200, b
    c = json.loads(b)["choices"][0]
    call = c["message"]["tool_calls"][0]
    assert c["message"]["content"] is None and call["type"] == "function" and call["id"].startswith("call_"), c
    assert call["function"]["name"] == "paint" and len(c["message"]["tool_calls"]) == 1, c
    if c["finish_reason"] == "tool_calls":
        assert validate_params(json.loads(call["function"]["arguments"])), c
        calls += 1
    else:
        assert c["finish_reason"] == "length", c
    # streamed: the role, then an event naming the call, then its arguments as they come, joining to the same text
    st, sb = post("/v1/chat/completions", dict(body, stream=True))
    events = [json.loads(l[6:]) for l in sb.splitlines() if l.startswith("data: {")]
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    parts = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert deltas[0]["role"] == "assistant" and not any(d.get("content") for d in deltas), deltas
    assert parts[0]["function"]["name"] == "paint" and parts[0]["id"].startswith("call_"), parts[0]
    assert all("id" not in p and "name" not in p["function"] and p["index"] == 0 for p in parts[1:]), parts
    assert "".join(p["function"]["arguments"] for p in parts) == call["function"]["arguments"], (parts, call)
    assert events[-1]["choices"][0]["finish_reason"] == c["finish_reason"], events[-1]
assert calls == 3, "a call's bounded arguments did not close in 128 tokens"
# no parameters: {}; required picks among the tools, several calls a line apart unless parallel_tool_calls is false
st, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": tools[1:],
             "tool_choice": "required", "max_tokens": 128, "parallel_tool_calls": False, "logprobs": True})
c = json.loads(b)["choices"][0]
assert st == 200 and c["finish_reason"] == "tool_calls" and c["message"]["tool_calls"][0]["function"]["arguments"] == "{}", b
assert len(c["message"]["tool_calls"]) == 1, c
assert c["logprobs"] == {"content": []}, c   # logprobs list the content's tokens: a call's are not content
for seed in range(3):
    st, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": tools, "seed": seed,
                 "tool_choice": "required", "max_tokens": 200, "temperature": 1.0})
    c = json.loads(b)["choices"][0]
    assert st == 200 and c["message"]["tool_calls"], b
    for k, call in enumerate(c["message"]["tool_calls"]):
        if c["finish_reason"] == "tool_calls" or k + 1 < len(c["message"]["tool_calls"]):
            a = json.loads(call["function"]["arguments"])
            assert (call["function"]["name"], validate_params(a) if call["function"]["name"] == "paint" else a == {}) \
                in (("paint", True), ("noop", True)), call
req = urllib.request.Request(url + "/v1/chat/completions", headers={"Content-Type": "application/json"},
                             data=json.dumps({"messages": [{"role": "user", "content": "hi"}], "tools": tools,
                                              "tool_choice": "none", "max_tokens": 2}).encode())
r = urllib.request.urlopen(req, timeout=60)   # none: the tools are not described, the answer is text
assert r.status == 200 and "Warning" not in r.headers and "tool_calls" not in json.loads(r.read())["choices"][0]["message"]
st, b = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": tools,
             "tool_choice": "required", "parallel_tool_calls": "no"})
assert st == 400 and json.loads(b)["error"]["param"] == "parallel_tool_calls", b
print(f"# {calls} of 3 forced calls closed with valid arguments")
PY
if [ -n "${DSK_PY:-}" ] && "$DSK_PY" -c 'import openai, pydantic' 2>/dev/null; then
    check "the openai client reads a forced call of a pydantic model's schema" "$DSK_PY" - "http://127.0.0.1:$port/v1" <<'PY'
import sys
from typing import Literal
import pydantic
from openai import OpenAI
class Pick(pydantic.BaseModel):
    color: Literal["red", "blue"]
    sure: bool
c = OpenAI(base_url=sys.argv[1], api_key="none")
tool = {"type": "function", "function": {"name": "pick", "parameters": Pick.model_json_schema()}}
r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "say red"}], tools=[tool],
                              tool_choice={"type": "function", "function": {"name": "pick"}}, max_tokens=128)
call = r.choices[0].message.tool_calls[0]
assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "pick", r
Pick.model_validate_json(call.function.arguments)
PY
else
    echo "ok $((tap_n += 1)) # SKIP the openai Python client is not installed (DSK_PY)"
fi
kill -TERM "$pid"; wait "$pid"

# Connections that send nothing hold their slots only --idle-timeout long:
# with every slot taken, /health answers again once they are closed.
start_server --max-connections 2 --idle-timeout 3
check "idle connections are closed after --idle-timeout" python3 - "$port" <<'PY'
import socket, sys, time, urllib.request
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
for sk in idle:
    sk.send(b"GET /health HTTP/1.1\r\nX: ")   # headers that never end
time.sleep(0.3)
# one more is closed as it opens (it used to wait in the backlog until a slot freed)
t0 = time.time()
extra = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    extra.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); got = extra.recv(100)
except ConnectionError:
    got = b""
assert got == b"" and time.time() - t0 < 2, (got, time.time() - t0)
time.sleep(5)
assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).status == 200
PY
kill -TERM "$pid"; wait "$pid"
# Scoring and sampling controls: echo with the prompt's logprobs (what
# lm-evaluation-harness sends) against dsk-eval mc, token-id and several
# prompts, logit_bias, the penalties, min_p.
start_server --max-batch 4 --max-queue 32
url=http://127.0.0.1:$port
printf '%s\n' '{"context": "say", "choices": [" cat", " dog blue"], "gold": 0}' \
    '{"context": "say red", "choices": [" green sun", " red"], "gold": 1}' > "$T/mc.jsonl"
dsk-eval mc "$T/ck" "$T/mc.jsonl" --items "$T/mc_items.jsonl" >/dev/null 2>&1
check "scoring and sampling controls" python3 - "$url" "$T/mc.jsonl" "$T/mc_items.jsonl" <<'PY'
import json, math, sys, urllib.error, urllib.request
url, mc, items = sys.argv[1], sys.argv[2], sys.argv[3]
def call(body, path="/v1/completions", stream=False):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read().decode()
            hdr = dict(r.headers)
            if stream:
                ev = [l[6:] for l in text.split("\n") if l.startswith("data: ")]
                assert ev[-1] == "[DONE]", ev[-1]
                return r.status, [json.loads(e) for e in ev[:-1]], hdr
            return r.status, json.loads(text), hdr
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)
def score(prompt):   # echo, nothing generated: the prompt's tokens and their logprobs
    st, r, _ = call({"prompt": prompt, "echo": True, "max_tokens": 0, "logprobs": 0, "temperature": 0})
    assert st == 200, r
    return r
# 1. echo + max_tokens 0 is dsk-eval mc's log-likelihood, continuation by continuation
for item, got in zip(map(json.loads, open(mc)), map(json.loads, open(items))):
    ctx = score(item["context"])["choices"][0]["logprobs"]
    assert ctx["token_logprobs"][0] is None and ctx["top_logprobs"][0] is None, ctx
    for choice, want in zip(item["choices"], got["loglikelihoods"]):
        r = score(item["context"] + choice)
        c = r["choices"][0]
        assert c["text"] == item["context"] + choice and c["finish_reason"] == "length", c
        lp = c["logprobs"]
        assert "".join(lp["tokens"]) == c["text"] and len(lp["tokens"]) == r["usage"]["prompt_tokens"], lp
        assert r["usage"]["completion_tokens"] == 0, r["usage"]
        ll = sum(lp["token_logprobs"][len(ctx["tokens"]):])
        assert abs(ll - want) < 2e-3 * max(1, abs(want)), (item, choice, ll, want)
        offs = lp["text_offset"]
        assert offs[0] == 0 and all(offs[i] == offs[i - 1] + len(lp["tokens"][i - 1]) for i in range(1, len(offs))), offs
# 2. echo with an answer: prompt tokens, then the answer's; the answer's logprobs are the decode's own
st, plain, _ = call({"prompt": "say red", "max_tokens": 6, "temperature": 0, "logprobs": 2, "ignore_eos": True})
st, ech, _ = call({"prompt": "say red", "max_tokens": 6, "temperature": 0, "logprobs": 2, "echo": True, "ignore_eos": True})
p, e = plain["choices"][0], ech["choices"][0]
n_prompt = ech["usage"]["prompt_tokens"]
assert e["text"] == "say red" + p["text"], (e["text"], p["text"])
assert e["logprobs"]["tokens"][n_prompt:] == p["logprobs"]["tokens"], (e["logprobs"], p["logprobs"])
assert all(abs(a - b) < 1e-4 for a, b in zip(e["logprobs"]["token_logprobs"][n_prompt:], p["logprobs"]["token_logprobs"]))
assert e["logprobs"]["text_offset"][n_prompt] == len("say red"), e["logprobs"]["text_offset"]
# ... and the prompt's scores are those of scoring the prompt alone
alone = score("say red")["choices"][0]["logprobs"]["token_logprobs"]
got = e["logprobs"]["token_logprobs"]
assert got[0] is None and all(abs(a - b) < 1e-4 for a, b in zip(alone[1:], got[1:n_prompt])), (alone, got)
# 3. the same, streamed: the prompt first, then the answer
st, ev, _ = call({"prompt": "say red", "max_tokens": 6, "temperature": 0, "logprobs": 2, "echo": True,
                  "ignore_eos": True, "stream": True}, stream=True)
texts = [c["text"] for x in ev for c in x["choices"]]
assert texts[0].startswith("say red") and "".join(texts) == e["text"], texts
lps = [v for x in ev for c in x["choices"] if c["logprobs"] for v in c["logprobs"]["token_logprobs"]]
assert lps[0] is None and len(lps) == len(got) and all(abs(a - b) < 1e-4 for a, b in zip(lps[1:], got[1:])), lps
offs = [v for x in ev for c in x["choices"] if c["logprobs"] for v in c["logprobs"]["text_offset"]]
assert offs == e["logprobs"]["text_offset"], (offs, e["logprobs"]["text_offset"])
# 4. token ids: the text's own ids give the text's answer; several prompts, n each, numbered prompt * n + i
text_of, token_of = {}, {}
for lo in range(0, 280, 32):   # every token's text, 32 prompts a request (the vocabulary is 280)
    ids = list(range(lo, min(lo + 32, 280)))
    st, r, _ = call({"prompt": [[i] for i in ids], "echo": True, "max_tokens": 0, "logprobs": 0})
    assert st == 200 and [c["index"] for c in r["choices"]] == list(range(len(ids))), r
    assert r["usage"]["prompt_tokens"] == len(ids) and r["usage"]["completion_tokens"] == 0, r["usage"]
    text_of.update({i: c["text"] for i, c in zip(ids, r["choices"])})
    token_of.update({i: c["logprobs"]["tokens"][0] for i, c in zip(ids, r["choices"])})
# as logprobs list them, tokens are distinct: a part of a character is "bytes:\\xNN", not U+FFFD
assert len(set(token_of.values())) == 280 and any(t.startswith("bytes:") for t in token_of.values()), token_of
ids = list(range(100, 164))
st, a, _ = call({"prompt": "say red", "max_tokens": 4, "temperature": 0, "ignore_eos": True, "echo": True,
                 "logprobs": 0})
st, b, _ = call({"prompt": [["say red"], ["say cat"]][0], "max_tokens": 4, "temperature": 0, "ignore_eos": True})
assert b["choices"][0]["text"] == a["choices"][0]["text"][len("say red"):], (a, b)
st, r, _ = call({"prompt": ["say red", "say cat"], "n": 2, "max_tokens": 4, "temperature": 0, "ignore_eos": True})
assert st == 200 and [c["index"] for c in r["choices"]] == [0, 1, 2, 3], r
assert r["choices"][0]["text"] == r["choices"][1]["text"] == b["choices"][0]["text"], r
one = call({"prompt": "say cat", "max_tokens": 4, "temperature": 0, "ignore_eos": True})[1]
assert r["choices"][2]["text"] == one["choices"][0]["text"] and r["usage"]["completion_tokens"] == 16, (r, one)
assert r["usage"]["prompt_tokens"] == a["usage"]["prompt_tokens"] + one["usage"]["prompt_tokens"], r["usage"]
# 5. logit_bias: +100 makes greedy pick a token every time; -100 bans the greedy choice
tok = next(i for i in ids if text_of[i].strip().isalpha())
st, r, h = call({"prompt": "say red", "max_tokens": 3, "temperature": 0, "logit_bias": {str(tok): 100}})
assert st == 200 and r["choices"][0]["text"] == text_of[tok] * 3 and "Warning" not in h, (r, text_of[tok], h)
st, r, _ = call({"prompt": "say red", "max_tokens": 3, "temperature": 0.8, "seed": 5, "logit_bias": {str(tok): 100}})
assert r["choices"][0]["text"] == text_of[tok] * 3, r
st, r, _ = call({"prompt": "say red", "max_tokens": 1, "temperature": 0, "logprobs": 1, "ignore_eos": True})
top = r["choices"][0]["logprobs"]["tokens"][0]
ban = {str(i): -100 for i, t in token_of.items() if t == top}   # the token listed so
st, r, _ = call({"prompt": "say red", "max_tokens": 1, "temperature": 0, "logprobs": 1, "ignore_eos": True,
                 "logit_bias": ban})
assert ban and r["choices"][0]["logprobs"]["tokens"][0] != top, (r, ban)
# 6. penalties: a strong frequency penalty breaks the greedy loop; values are checked
st, r0, _ = call({"prompt": "say red", "max_tokens": 24, "temperature": 0, "ignore_eos": True, "logprobs": 0})
st, r1, h = call({"prompt": "say red", "max_tokens": 24, "temperature": 0, "ignore_eos": True, "logprobs": 0,
                  "frequency_penalty": 2, "presence_penalty": 2})
d0, d1 = (len(set(r["choices"][0]["logprobs"]["tokens"])) for r in (r0, r1))
assert st == 200 and d1 > d0 and "Warning" not in h, (d0, d1, h)
st, r2, _ = call({"prompt": "say red", "max_tokens": 24, "temperature": 0, "ignore_eos": True, "repetition_penalty": 3})
assert st == 200 and r2["choices"][0]["text"] != r0["choices"][0]["text"], r2
st, r3, _ = call({"prompt": "say red", "max_tokens": 8, "temperature": 1.5, "seed": 1, "min_p": 1, "ignore_eos": True})
st, g8, _ = call({"prompt": "say red", "max_tokens": 8, "temperature": 0, "ignore_eos": True})
assert r3["choices"][0]["text"] == g8["choices"][0]["text"], (r3, g8)   # min_p 1: only the likeliest survives
# 7. errors name their field
for body, param in (({"prompt": [[1]] * 33}, "prompt"), ({"prompt": "x", "logit_bias": {"07": 1}}, "logit_bias"),({"prompt": [[1, 100000]]}, "prompt"), ({"prompt": [1, 2], "max_tokens": 0}, "max_tokens"),
                    ({"prompt": "x", "logit_bias": {"100000": 1}}, "logit_bias"),
                    ({"prompt": [[1], [100000]]}, "prompt[1]"), ({"prompt": "x", "min_p": 2}, "min_p")):
    st, r, _ = call(body)
    assert st == 400 and r["error"]["param"] == param, (body, st, r)
# 8. one logprobs entry a generated token, the end token too (lm-eval drops the last entry of
#    "prompt + 1 token"); chat lists the text's tokens only
end = next(i for i, t in text_of.items() if t == "<|endoftext|>")
st, r, _ = call({"prompt": "say red", "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0,
                 "logit_bias": {str(end): 100}})
c = r["choices"][0]
assert st == 200 and c["finish_reason"] == "stop" and c["text"] == "say red", r
assert len(c["logprobs"]["tokens"]) == r["usage"]["prompt_tokens"] + 1 and c["logprobs"]["tokens"][-1] == "<|endoftext|>", c
assert c["logprobs"]["text_offset"][-1] == len("say red") and r["usage"]["completion_tokens"] == 1, c
st, r, _ = call({"messages": [{"role": "user", "content": "say cat"}], "max_tokens": 2, "logprobs": True,
                 "temperature": 0, "logit_bias": {str(end): 100}}, path="/v1/chat/completions")
assert r["choices"][0]["logprobs"]["content"] == [] and r["usage"]["completion_tokens"] == 1, r
# 9. a character cut between the prompt and the answer: one character, offsets over the whole text, and
#    a stream that holds the cut bytes back (ids 0..255 are the bytes)
if text_of[ord("A")] == "A":
    body = {"prompt": [[0xE6, 0x97]], "max_tokens": 1, "echo": True, "logprobs": 0, "temperature": 0,
            "logit_bias": {str(0xA5): 100}}
    st, r, _ = call(body)
    c = r["choices"][0]
    assert c["text"] == "\u65e5" and c["logprobs"]["text_offset"] == [0, 0, 0], c
    st, ev, _ = call({**body, "stream": True}, stream=True)
    assert "".join(ch["text"] for x in ev for ch in x["choices"]) == "\u65e5", ev
# 10. each prompt's default max_tokens is what its own context leaves (ctx 64)
st, r, _ = call({"prompt": [[5], [5] * 40], "logprobs": 0, "ignore_eos": True, "temperature": 0})
assert [len(c["logprobs"]["tokens"]) for c in r["choices"]] == [63, 24], r
st, r, _ = call({"prompt": [[5], [5] * 70], "max_tokens": 1})
assert st == 400 and r["error"]["param"] == "prompt[1]", r
# chat takes the sampling controls too
st, r, h = call({"messages": [{"role": "user", "content": "say cat"}], "max_tokens": 3, "temperature": 0,
                 "logit_bias": {str(tok): 100}}, path="/v1/chat/completions")
assert st == 200 and r["choices"][0]["message"]["content"] == text_of[tok] * 3, r
PY
kill -TERM "$pid"; wait "$pid"
start_server --api-key s3cret --json-compact   # compact: structured answers close within max_tokens
url=http://127.0.0.1:$port
check "the API key is required and checked" python3 - "$url" <<'PY'
import json, sys, urllib.error, urllib.request
url = sys.argv[1]
def st(key, scheme="Bearer"):
    h = {"Content-Type": "application/json"}
    if key: h["Authorization"] = scheme + " " + key
    req = urllib.request.Request(url + "/v1/models", headers=h)
    try:
        return urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as e:
        assert json.loads(e.read())["error"]["type"] == "authentication_error"
        return e.code
assert st(None) == 401 and st("wrong") == 401 and st("s3cret0") == 401 and st("s3cret") == 200
assert st("s3cret", "bearer") == 200 and st("s3cret", "Basic") == 401   # the scheme's name is case-insensitive
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
# structured output as its users write it: a pydantic model to .parse()
from typing import Literal
import pydantic
class Pick(pydantic.BaseModel):
    color: Literal["red", "blue"]
    sure: bool
r = c.beta.chat.completions.parse(model="m", messages=[{"role": "user", "content": "say red"}],
                                  response_format=Pick, max_tokens=56)
assert isinstance(r.choices[0].message.parsed, Pick), r
PY
else
    echo "ok $((tap_n += 1)) # SKIP the openai Python client is not installed (DSK_PY)"
fi
kill -TERM "$pid"; wait "$pid"
# Speculative decoding (--speculate): the same answers with drafts and
# without (greedy, sampled with a seed, log-probabilities, several
# choices, JSON mode, chat), while drafts are offered and most are taken.
expect_exit 64 "--speculate past its limit (7: a step with drafts has 8 rows)" dsk-serve "$T/ck" --port 0 --speculate 8
expect_exit 64 "--speculate-ngram 0" dsk-serve "$T/ck" --port 0 --speculate 4 --speculate-ngram 0
for spec in 0 6; do
    start_server --speculate $spec --max-batch 4
    python3 - "http://127.0.0.1:$port" "$T/spec-$spec.json" <<'PY' || echo "speculation run failed" >> "$T/spec-$spec.json"
import json, sys, urllib.request
url, out = sys.argv[1], sys.argv[2]
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    r = json.loads(urllib.request.urlopen(req, timeout=120).read())
    r.pop("id"), r.pop("created")
    return r
answers = []
for i, prompt in enumerate(["red green blue red green blue red green", "say cat say dog say cat say", "sun", "the"]):
    base = {"prompt": prompt, "max_tokens": 24, "ignore_eos": True}
    answers.append(post("/v1/completions", {**base, "temperature": 0}))
    answers.append(post("/v1/completions", {**base, "temperature": 0.9, "seed": 7 + i, "n": 3, "logprobs": 2}))
    answers.append(post("/v1/completions", {**base, "temperature": 0, "frequency_penalty": 0.1}))
answers.append(post("/v1/chat/completions", {"messages": [{"role": "user", "content": "say cat"}], "max_tokens": 16,
                                              "temperature": 0}))
answers.append(post("/v1/completions", {"prompt": "say", "max_tokens": 40, "temperature": 0,
                                         "response_format": {"type": "json_object"}}))
m = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
spec = {l.split()[0]: float(l.split()[1]) for l in m.splitlines()
        if l.startswith(("dsk:spec_decode", "dsk:time_per_output_token_seconds_count"))}
json.dump({"answers": answers, "metrics": spec}, open(out, "w"))
PY
    kill -TERM "$pid"; wait "$pid" || { echo "# dsk-serve --speculate $spec: exit $?"; sed 's/^/# /' "$T/serve.err"; }
done
check "speculative decoding changes no answer, and drafts are taken" python3 - "$T/spec-0.json" "$T/spec-6.json" <<'PY'
import json, sys
off, on = (json.load(open(f)) for f in sys.argv[1:3])
for a, b in zip(off["answers"], on["answers"]):
    assert a == b, (a, b)
assert len(off["answers"]) == len(on["answers"]) == 14
drafted, taken = on["metrics"]["dsk:spec_decode_num_draft_tokens_total"], on["metrics"]["dsk:spec_decode_num_accepted_tokens_total"]
assert off["metrics"]["dsk:spec_decode_num_draft_tokens_total"] == 0, off["metrics"]
assert drafted > 0 and taken > drafted / 4, on["metrics"]
# a step that gives a choice several tokens shares its gap among them: one observation a token either way
tpot = "dsk:time_per_output_token_seconds_count"
assert off["metrics"][tpot] == on["metrics"][tpot] > 0, (off["metrics"], on["metrics"])
print(f"# {drafted:.0f} draft tokens, {taken:.0f} taken")
PY
# A slow model (DSK_SERVE_STEP_DELAY_MS: 50 ms a step, whatever the machine): a stream may wait longer than
# --idle-timeout for its slot (the idle timeout is for clients that send nothing), and a stream cut short
# by SIGTERM's grace ends with an error event, not a finish reason.
DSK_SERVE_STEP_DELAY_MS=50 start_server --max-batch 1 --idle-timeout 1 --grace 1
check "a stream that waits past --idle-timeout for its slot is answered whole" python3 - "http://127.0.0.1:$port" <<'PY'
import json, sys, threading, time, urllib.request
url = sys.argv[1]
got = {}
def post(body, key):
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode())
    got[key] = urllib.request.urlopen(req, timeout=120).read().decode()
long = threading.Thread(target=post, args=({"prompt": "a", "max_tokens": 60, "ignore_eos": True}, "long"))
long.start(); time.sleep(0.3)
t0 = time.time()
post({"prompt": "b", "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}}, "sse")
waited = time.time() - t0
long.join()
sse = got["sse"]
assert sse.endswith("data: [DONE]\n\n") and '"finish_reason":"length"' in sse and '"usage":{' in sse, sse
assert json.loads(got["long"])["usage"]["completion_tokens"] == 60, got["long"]
print(f"# the stream waited {waited:.1f} s")
assert waited > 1.5, waited   # 60 steps of 50 ms held the one slot: longer than the idle timeout
PY
python3 - "http://127.0.0.1:$port" "$T/cut.sse" "$T/cut.json" <<'PY' &
import json, sys, threading, urllib.request, urllib.error
url, sse_out, whole_out = sys.argv[1:4]
def post(body, out):
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode())
    try:
        r = urllib.request.urlopen(req, timeout=120); text = r.read().decode()
    except urllib.error.HTTPError as e:
        text = f"{e.code} " + e.read().decode()
    open(out, "w").write(text)
body = {"prompt": "a", "max_tokens": 60, "ignore_eos": True}
ts = [threading.Thread(target=post, args=({**body, "stream": True, "stream_options": {"include_usage": True}},
                                          sse_out)),
      threading.Thread(target=post, args=(body, whole_out))]
[t.start() for t in ts]; [t.join() for t in ts]
PY
client=$!
sleep 1
kill -TERM "$pid"; wait "$pid"; wait "$client"
check "a stream cut short by the end of SIGTERM's grace ends with an error event and [DONE], no finish reason" \
    python3 - "$T/cut.sse" "$T/cut.json" <<'PY'
import json, sys
sse, whole = (open(f).read() for f in sys.argv[1:3])
events = [e[6:] for e in sse.split("\n\n") if e.startswith("data: ")]
assert events[-1] == "[DONE]", events[-3:]
err = json.loads(events[-2])["error"]
assert "server is stopping" in err["message"], err
assert not any(json.loads(e).get("choices", [{}])[0].get("finish_reason") for e in events[:-2] if "choices" in e), sse
assert not any('"usage":{' in e for e in events), sse   # no usage for an answer cut short
# the answer waiting in the queue behind it is refused as the server stops
assert whole.startswith("503 ") and "server is stopping" in whole, whole
PY
# A request half received when SIGTERM comes is waited for (within the
# grace) and refused whole, not dropped with its connection; meanwhile a
# new connection is refused and /health says stopping, closing its
# connection; the server stops as soon as the request is answered.
start_server --grace 20
python3 - "$port" "$T/half.json" "$T/half.sent" <<'PY' &
import json, socket, sys, time
port, out, sent = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def read_all(c):
    answer = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            return answer.decode()
        answer += chunk
body = b'{"prompt": "a", "max_tokens": 2}'
c = socket.create_connection(("127.0.0.1", port), timeout=60)
c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
kept = socket.create_connection(("127.0.0.1", port), timeout=60)
kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
before = kept.recv(65536).decode()
open(sent, "w").close()
time.sleep(1.5)   # SIGTERM comes meanwhile
try:
    socket.create_connection(("127.0.0.1", port), timeout=10).close()
    new = "connected"
except ConnectionRefusedError:
    new = "refused"
kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
after = read_all(kept)   # to its end: the connection is closed after it
c.sendall(body[10:])
json.dump({"health_before": before, "new": new, "health_after": after, "answer": read_all(c)}, open(out, "w"))
PY
client=$!
for _ in $(seq 100); do [ -e "$T/half.sent" ] && break; sleep 0.1; done
t0=$(date +%s)
kill -TERM "$pid"; wait "$pid"; rc=$?; wait "$client"
t1=$(date +%s)
check "while stopping: a half-received request is answered 503, /health says stopping, new connections are refused" \
    python3 - "$T/half.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["health_before"].startswith("HTTP/1.1 200 ") and '{"status":"ok"}' in r["health_before"], r
assert r["new"] == "refused", r
h = r["health_after"]
assert h.startswith("HTTP/1.1 503 ") and '{"status":"stopping"}' in h and "Connection: close" in h, h
a = r["answer"]
assert a.startswith("HTTP/1.1 503 ") and "the server is stopping" in a and "Connection: close" in a, a
PY
check "the server then stops at once, not at the end of its grace (exit 0)" test "$rc" -eq 0 -a $((t1 - t0)) -lt 15
# A second SIGTERM cuts the grace short: the running request is cancelled, the server exits 0 at once.
DSK_SERVE_STEP_DELAY_MS=200 start_server --grace 60
curl -s -o "$T/long.out" "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt": "a", "max_tokens": 40, "ignore_eos": true}' &
client=$!
sleep 1
t0=$(date +%s)
kill -TERM "$pid"; sleep 0.5; kill -TERM "$pid"; wait "$pid"; rc=$?; wait "$client"
t1=$(date +%s)
check "a second SIGTERM cancels the running requests: exit 0 in seconds, not the 60 s grace" \
    test "$rc" -eq 0 -a $((t1 - t0)) -lt 10
check "... the request is answered (503, stopping)" grep -q "stopping" "$T/long.out"
# --timeout bounds a stream that keeps sending text, as it does a whole answer.
DSK_SERVE_STEP_DELAY_MS=50 start_server --timeout 1
check "past --timeout a stream ends with a timeout error event and [DONE]; a whole answer is 504" \
    python3 - "http://127.0.0.1:$port" <<'PY'
import json, sys, threading, time, urllib.error, urllib.request
url = sys.argv[1]
body = {"prompt": "a", "max_tokens": 60, "ignore_eos": True, "logprobs": 1}
got = {}
def post(key, extra):
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps({**body, **extra}).encode())
    t0 = time.time()
    try:
        got[key] = urllib.request.urlopen(req, timeout=60).read().decode()
    except urllib.error.HTTPError as e:
        got[key] = f"{e.code} " + e.read().decode()
    got[key + "_s"] = time.time() - t0
ts = [threading.Thread(target=post, args=("sse", {"stream": True})), threading.Thread(target=post, args=("whole", {}))]
[t.start() for t in ts]; [t.join() for t in ts]
events = [e[6:] for e in got["sse"].split("\n\n") if e.startswith("data: ")]
assert events[-1] == "[DONE]", events[-3:]
assert json.loads(events[-2])["error"]["code"] == "timeout", events[-2]
texts = [json.loads(e) for e in events[:-2]]
assert texts and not any(t["choices"][0]["finish_reason"] for t in texts), texts[-1]   # text came, then the cut
assert got["sse_s"] < 2.5, got["sse_s"]   # 60 steps of 50 ms would take 3 s
assert got["whole"].startswith("504 "), got["whole"]
PY
kill -TERM "$pid"; wait "$pid"
# A signal while the checkpoint loads (a large model: 30 s here) ends the process at once.
DSK_SERVE_LOAD_DELAY_MS=30000 dsk-serve "$T/ck" --port 0 2>"$T/serve.err" &
pid=$!
for _ in $(seq 600); do grep -q "loading" "$T/serve.err" && break; sleep 0.1; done
t0=$(date +%s)
kill -TERM "$pid"; wait "$pid"; rc=$?
t1=$(date +%s)
check "SIGTERM while the checkpoint loads ends the server at once with status 0" \
    test "$rc" -eq 0 -a $((t1 - t0)) -lt 10
check "... and says so" grep -q "SIGTERM while loading: stopped" "$T/serve.err"
# Started with SIGINT ignored (a script's background job), it keeps ignoring it (dsk(7)).
(trap '' INT; exec dsk-serve "$T/ck" --port 0 2>"$T/serve.err") &
pid=$!
for _ in $(seq 600); do grep -q "ready:" "$T/serve.err" && break; sleep 0.1; done
kill -INT "$pid"; sleep 1
check "a SIGINT ignored at start stays ignored" kill -0 "$pid"
kill -TERM "$pid"; wait "$pid"; rc=$?
check "... and SIGTERM still stops it (exit 0)" test "$rc" -eq 0
expect_exit 69 "a port in use" bash -c "python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(20)' > '$T/p' & sleep 1; dsk-serve '$T/ck' --port \$(cat '$T/p')"
# Tool use end to end: a model trained on OpenAI's fine-tuning records with tools (a call when asked the
# weather, text otherwise) is served; tool_choice auto (the default) returns its calls as tool_calls,
# whole and streamed, and a conversation holding a call and its result is taken.
python3 - "$T" <<'PY'
import json, random, sys
random.seed(3)
tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object",
                                                                        "properties": {"city": {"type": "string"}}}}}]
with open(f"{sys.argv[1]}/tools.jsonl", "w") as f:
    for i in range(400):
        x = random.choice("red green blue cat dog sun".split())
        if i % 2:
            call = {"id": "c", "type": "function", "function": {"name": "weather", "arguments": json.dumps({"city": x})}}
            msgs = [{"role": "user", "content": f"weather in {x}?"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
        else:
            msgs = [{"role": "user", "content": f"say {x}"}, {"role": "assistant", "content": x}]
        f.write(json.dumps({"tools": tools, "messages": msgs}) + "\n")
PY
dsk-bpe train --vocab-size 400 -o "$T/tools-tok.json" "$T/tools.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/tools-tok.json" -o "$T/tools.dskt" "$T/tools.jsonl"
dsk-pack -q -t "$T/tools-tok.json" -o "$T/tools-ds" --seq-len 128 "$T/tools.dskt"
dsk-train -q -j 2 --config nano --set seq_len=128 --data "$T/tools-ds" --out "$T/tools-ck" -b 16 --steps 800 --lr 5e-3 \
    --warmup 20 --eval-every 0
ckpt=$T/tools-ck start_server --max-batch 4
check "tool_choice auto: the calls a model makes come back as tool_calls, whole and streamed" python3 - "http://127.0.0.1:$port" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object",
                                                                        "properties": {"city": {"type": "string"}}}}}]
def post(body):
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read().decode(), r.headers
called = answered = streamed = held = 0
for x in "red green blue cat dog sun".split():
    ask = {"messages": [{"role": "user", "content": f"weather in {x}?"}], "tools": tools, "temperature": 0, "max_tokens": 40}
    b, h = post(ask)
    c = json.loads(b)["choices"][0]
    assert "Warning" not in h, dict(h)   # auto is no longer ignored
    if c["finish_reason"] == "tool_calls":
        call = c["message"]["tool_calls"][0]
        assert c["message"]["content"] is None and call["type"] == "function" and call["id"].startswith("call_"), c
        assert call["function"]["name"] == "weather", c
        called += json.loads(call["function"]["arguments"]) == {"city": x}
    # streamed: no text of the call, then the call's name, its arguments as they come, then the finish reason
    b, _ = post({**ask, "stream": True})
    events = [json.loads(e[6:]) for e in b.split("\n\n") if e.startswith("data: {")]
    deltas = [e["choices"][0]["delta"] for e in events]
    assert not any("<tool_call>" in (d.get("content") or "") for d in deltas), deltas
    got = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    if events[-1]["choices"][0]["finish_reason"] == "tool_calls":
        assert got[0]["index"] == 0 and got[0]["function"]["name"] == "weather", events
        assert all(g["index"] == 0 and "name" not in g["function"] for g in got[1:]), got
        assert deltas[-1] == {}, deltas
        streamed += "".join(g["function"]["arguments"] for g in got) == \
            c["message"]["tool_calls"][0]["function"]["arguments"]
    # held to the parameters: a city of at most 3 characters, whatever the model would write; stop
    # strings end text, and are not looked for in a call or in a tail that may begin one ("<tool_call>")
    short = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties":
             {"city": {"type": "string", "maxLength": 3}}, "required": ["city"], "additionalProperties": False}}}]
    b, _ = post({"messages": ask["messages"], "tools": short, "temperature": 0, "stop": ["city", "}", "_call"]})
    c = json.loads(b)["choices"][0]
    for call in c["message"].get("tool_calls") or []:   # whatever it would write, the schema holds
        a = json.loads(call["function"]["arguments"])
        assert list(a) == ["city"] and len(a["city"]) <= 3, c
        held += a["city"] == x[:3]
    b, _ = post({"messages": [{"role": "user", "content": f"say {x}"}], "tools": tools, "temperature": 0,
                 "max_tokens": 40})
    c = json.loads(b)["choices"][0]
    answered += c["finish_reason"] == "stop" and c["message"]["content"] == x and "tool_calls" not in c["message"]
# a conversation with the call and its result (the model was not trained on results: any answer will do)
b, _ = post({"messages": [{"role": "user", "content": "weather in red?"},
                          {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                           "function": {"name": "weather", "arguments": "{\"city\": \"red\"}"}}]},
                          {"role": "tool", "tool_call_id": "call_1", "content": "sun"}],
             "tools": tools, "temperature": 0, "max_tokens": 4})
assert json.loads(b)["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls"), b
print(f"# tool_choice auto: {called} of 6 asked the weather called it with their city ({streamed} streamed alike,"
      f" {held} its first 3 characters under a schema of 3); {answered} of 6 said their word")
assert called >= 4 and streamed == called and held >= 3 and answered >= 4, (called, streamed, held, answered)
PY
if [ -n "${DSK_PY:-}" ] && "$DSK_PY" -c 'import openai' 2>/dev/null; then
    check "the openai client reads an auto tool call" "$DSK_PY" - "http://127.0.0.1:$port/v1" <<'PY'
import json, sys
from openai import OpenAI
c = OpenAI(base_url=sys.argv[1], api_key="none")
tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object",
                                                                        "properties": {"city": {"type": "string"}}}}}]
r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "weather in dog?"}], tools=tools,
                              temperature=0, max_tokens=40)
m = r.choices[0].message
assert r.choices[0].finish_reason == "tool_calls" and m.tool_calls[0].function.name == "weather", r
assert json.loads(m.tool_calls[0].function.arguments) == {"city": "dog"}, m
PY
else
    echo "ok $((tap_n += 1)) # SKIP the openai Python client is not installed (DSK_PY)"
fi
# Jump-forward decoding: a forced call's bytes where the grammar allows one
# only are taken whole, encoded by the tokenizer (the metric counts them),
# all but the last piece of a run, which the model draws: so it can still
# draw '":{"' as one token, as trained, rather than be handed '":{' and
# left to choose between '"' and '}' (with whole runs forced, this
# model's calls under tool_choice auto above all came with {}).  Without
# it, every token is drawn: the same calls.
cat > "$T/forced.py" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object",
                                                                        "properties": {"city": {"type": "string"}}}}}]
def post(path, body=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read().decode()
calls = []
for x in "red green blue cat dog sun".split():
    c = json.loads(post("/v1/chat/completions", {"messages": [{"role": "user", "content": f"weather in {x}?"}],
        "tools": tools, "tool_choice": "required", "temperature": 0, "max_tokens": 40}))["choices"][0]
    assert c["finish_reason"] == "tool_calls", c
    calls.append(json.loads(c["message"]["tool_calls"][0]["function"]["arguments"]))
jumped = [float(l.split()[1]) for l in post("/metrics").splitlines() if l.startswith("dsk:jump_forward_tokens_total")]
print(json.dumps({"calls": calls, "jumped": jumped[0]}))
PY
check "jump-forward: forced calls of the trained model call the weather with the city asked" \
    sh -c 'python3 "$1/forced.py" "$2" > "$1/forced-on.json" && python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
ok = sum(c == {\"city\": x} for c, x in zip(r[\"calls\"], \"red green blue cat dog sun\".split()))
print(\"# jump-forward on:\", ok, \"of 6 calls with the city asked,\", r[\"jumped\"], \"tokens taken undrawn\")
assert ok >= 4 and r[\"jumped\"] >= 6, r" "$1/forced-on.json"' - "$T" "http://127.0.0.1:$port"
kill -TERM "$pid"; wait "$pid"
ckpt=$T/tools-ck start_server --max-batch 4 --no-jump-forward
check "--no-jump-forward: the same calls, every token drawn" \
    sh -c 'python3 "$1/forced.py" "$2" > "$1/forced-off.json" && python3 -c "
import json, sys
on, off = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert off[\"calls\"] == on[\"calls\"] and off[\"jumped\"] == 0, (on, off)" "$1/forced-on.json" "$1/forced-off.json"' \
    - "$T" "http://127.0.0.1:$port"
kill -TERM "$pid"; wait "$pid"
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
