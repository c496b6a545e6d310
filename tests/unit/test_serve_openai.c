/* The OpenAI layer of dsk-serve: request parsing and validation, error
 * objects, response and stream shapes, and the stop-sequence hold-back. */
#include "core/err.h"
#include "serve/openai.h"
#include "test.h"

static dsk_openai_limits lim;

static void init_limits(void)
{
    dsk_openai_limits_default(&lim);
}

static int parse(const char *body, int kind, dsk_openai_request *req, dsk_openai_error *e)
{
    init_limits();
    return dsk_openai_parse(body, strlen(body), kind, &lim, req, e);
}

/* Parses an error body back and checks it is OpenAI's error object with
 * this param (NULL: null). */
static void check_error_json(const dsk_openai_error *e, const char *param)
{
    dsk_buf b = {0};
    dsk_openai_error_json(e, &b);
    char msg[128];
    struct json_object *o = dsk_json_parse(b.data, b.len, msg, sizeof msg), *err = NULL, *v = NULL;
    CHECK(o && json_object_object_get_ex(o, "error", &err) && json_object_object_length(o) == 1);
    CHECK(json_object_object_length(err) == 4);
    CHECK(dsk_json_get_string(err, "message") && json_object_get_string_len(dsk_json_get_string(err, "message")) > 0);
    CHECK_STR(json_object_get_string(dsk_json_get_string(err, "type")), "invalid_request_error");
    CHECK(json_object_object_get_ex(err, "param", &v));
    if (param)
        CHECK_STR(json_object_get_string(v), param);
    else
        CHECK(v == NULL);
    CHECK(json_object_object_get_ex(err, "code", &v));
    json_object_put(o);
    dsk_buf_free(&b);
}

/* The body fails with status and names param. */
static void expect_fail(const char *body, int kind, int status, const char *param)
{
    dsk_openai_request req;
    dsk_openai_error e;
    int rc = parse(body, kind, &req, &e);
    if (rc != status || e.status != status || strcmp(e.param, param ? param : "") != 0)
        printf("#   body %s: rc %d, param '%s' (%s), want %d '%s'\n", body, rc, e.param, e.message, status,
               param ? param : "");
    CHECK(rc == status);
    CHECK(e.status == status);
    CHECK_STR(e.param, param ? param : "");
    check_error_json(&e, param);
    CHECK(req.chat == NULL && req.prompts == NULL && req.n_stop == 0 && req.logit_bias == NULL);
    dsk_openai_request_free(&req);
}

TEST(chat_every_field)
{
    const char *body =
        "{\"model\":\"dsk-tiny\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"},{\"type\":\"text\",\"text\":\"there\"}]},"
        "{\"role\":\"assistant\",\"content\":null},{\"role\":\"developer\",\"content\":\"x\",\"name\":\"bob\"}],"
        "\"max_tokens\":7,\"max_completion_tokens\":9,\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,"
        "\"stop\":[\"\\n\\n\",\"END\"],\"seed\":-12345678901,\"n\":2,\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"logprobs\":true,\"top_logprobs\":3,\"user\":\"u1\","
        "\"frequency_penalty\":0,\"presence_penalty\":0,\"ignore_eos\":true,"
        "\"response_format\":{\"type\":\"json_object\"}}";
    dsk_openai_request req;
    dsk_openai_error e;
    CHECK(parse(body, DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(e.status == 0);
    CHECK_STR(req.model, "dsk-tiny");
    CHECK(req.max_tokens == 9 && req.max_tokens_given);  /* max_completion_tokens wins */
    CHECK_NEAR(req.temperature, 0.5, 0);
    CHECK_NEAR(req.top_p, 0.9, 0);
    CHECK(req.top_k == 40);
    CHECK(req.n_stop == 2);
    CHECK_STR(req.stop[0], "\n\n");
    CHECK_STR(req.stop[1], "END");
    CHECK(req.has_seed && req.seed == -12345678901LL);
    CHECK(req.n == 2 && req.stream == 1 && req.include_usage == 1);
    CHECK(req.want_logprobs == 1 && req.logprobs == 1 && req.top_logprobs == 3);
    CHECK_STR(req.user, "u1");
    CHECK(req.ignore_eos == 1);
    CHECK(req.json_mode == 1);
    CHECK(req.n_ignored == 0);
    CHECK(req.prompts == NULL);
    /* the normalized document for dsk_bpe_encode_generation_prompt */
    dsk_buf b = {0};
    dsk_json_append(req.chat, &b);
    CHECK_STR(b.data, "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                      "{\"role\":\"user\",\"content\":\"Hi\\nthere\"},{\"role\":\"assistant\",\"content\":\"\"},"
                      "{\"role\":\"system\",\"content\":\"x\"}]}");
    dsk_buf_free(&b);
    dsk_openai_request_free(&req);
}

TEST(chat_defaults)
{
    dsk_openai_request req;
    dsk_openai_error e;
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":null,\"stop\":null}",
                DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK_STR(req.model, "");
    CHECK(req.max_tokens == lim.default_max_tokens && !req.max_tokens_given);
    CHECK(req.temperature == 1 && req.top_p == 1 && req.top_k == 0 && req.n == 1);
    CHECK(!req.stream && !req.include_usage && !req.want_logprobs && !req.has_seed && req.n_stop == 0);
    CHECK(req.user == NULL);
    CHECK(req.json_mode == DSK_OPENAI_TEXT && req.json_schema == NULL);
    dsk_openai_request_free(&req);
    /* a JSON schema is compiled with the request; without one, any JSON value */
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":"
                "\"json_schema\",\"json_schema\":{\"name\":\"p\",\"strict\":true,\"schema\":{\"type\":\"object\","
                "\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"],\"additionalProperties\":false}}}}",
                DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.json_mode == DSK_OPENAI_JSON_SCHEMA && req.json_schema != NULL);
    dsk_openai_request_free(&req);
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":"
                "\"json_schema\",\"json_schema\":{\"name\":\"any\"}}}", DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.json_mode == DSK_OPENAI_JSON_SCHEMA && req.json_schema != NULL);
    dsk_openai_request_free(&req);
    /* a schema of 31 levels of nullable objects, OpenAI's way (anyOf with
     * null): the body nests over 120 levels, more than json-c's default */
    {
        dsk_buf b = {0};
        dsk_buf_adds(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":"
                         "\"json_schema\",\"json_schema\":{\"name\":\"deep\",\"strict\":true,\"schema\":");
        for (int i = 0; i < 31; i++)
            dsk_buf_adds(&b, "{\"anyOf\":[{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"x\"],"
                             "\"properties\":{\"x\":");
        dsk_buf_adds(&b, "{\"type\":\"integer\"}");
        for (int i = 0; i < 31; i++)
            dsk_buf_adds(&b, "}},{\"type\":\"null\"}]}");
        dsk_buf_adds(&b, "}}}");
        dsk_buf_addc(&b, 0);
        CHECK(parse(b.data, DSK_OPENAI_CHAT, &req, &e) == 0);
        CHECK(req.json_mode == DSK_OPENAI_JSON_SCHEMA && req.json_schema != NULL);
        dsk_openai_request_free(&req);
        dsk_buf_free(&b);
    }
    /* nested fields that are null count as not given, as top-level ones do */
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,\"stream_options\":"
                "{\"include_usage\":null},\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                "{\"name\":null,\"schema\":null}}}", DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.stream && !req.include_usage);
    CHECK(req.json_mode == DSK_OPENAI_JSON_SCHEMA && req.json_schema != NULL);
    dsk_openai_request_free(&req);
    /* tools: compiled for the calls, described in the prompt; a named
     * function is called at once and alone, required calls at once, auto
     * may call; none describes nothing and calls nothing */
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":"
                "{\"name\":\"get_weather\",\"description\":\"d\",\"parameters\":{\"type\":\"object\",\"properties\":"
                "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},{\"type\":\"function\",\"function\":"
                "{\"name\":\"noop\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}",
                DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.call_tools != NULL && req.tools_mode == DSK_CALLS_REQUIRED && req.tools_only == 0);
    CHECK(!req.parallel_tool_calls && req.json_mode == DSK_OPENAI_TEXT && req.n_ignored == 0);
    CHECK(req.call_tools && dsk_call_tools_loose(req.call_tools, 0) == NULL);
    CHECK(json_object_object_get_ex(req.chat, "tools", NULL));
    dsk_openai_request_free(&req);
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":"
                "{\"name\":\"noop\"}},{\"type\":\"function\",\"function\":{\"name\":\"other\"}}],"
                "\"tool_choice\":\"required\",\"parallel_tool_calls\":false}", DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.call_tools != NULL && req.tools_mode == DSK_CALLS_REQUIRED && req.tools_only == -1);
    CHECK(!req.parallel_tool_calls && req.n_ignored == 0);
    dsk_openai_request_free(&req);
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":"
                "{\"name\":\"noop\"}}]}", DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.call_tools != NULL && req.tools_mode == DSK_CALLS_AUTO && req.parallel_tool_calls);
    CHECK(req.json_mode == DSK_OPENAI_TEXT && req.n_ignored == 0);
    {   /* auto: the tools go with the messages, for the template */
        dsk_buf b = {0};
        dsk_json_append(req.chat, &b);
        CHECK_STR(b.data, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":"
                          "\"function\",\"function\":{\"name\":\"noop\"}}]}");
        dsk_buf_free(&b);
    }
    dsk_openai_request_free(&req);
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":"
                "{\"name\":\"noop\"}}],\"tool_choice\":\"none\"}", DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.call_tools == NULL && req.n_ignored == 0);
    CHECK(!json_object_object_get_ex(req.chat, "tools", NULL));
    dsk_openai_request_free(&req);
    /* a conversation with a call and its result: kept for the template */
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"rain?\"},{\"role\":\"assistant\",\"content\":"
                "null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":"
                "\"{\\\"city\\\": \\\"Oslo\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"rain\"}]}",
                DSK_OPENAI_CHAT, &req, &e) == 0);
    {
        dsk_buf b = {0};
        dsk_json_append(req.chat, &b);
        CHECK_STR(b.data, "{\"messages\":[{\"role\":\"user\",\"content\":\"rain?\"},{\"role\":\"assistant\","
                          "\"content\":\"\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":"
                          "{\"name\":\"w\",\"arguments\":\"{\\\"city\\\": \\\"Oslo\\\"}\"}}]},{\"role\":\"tool\","
                          "\"content\":\"rain\"}]}");
        dsk_buf_free(&b);
    }
    dsk_openai_request_free(&req);
    /* max_tokens alone, integral decimal, top_k -1 */
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5.0,\"top_k\":-1,"
                "\"stop\":\"x\"}", DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.max_tokens == 5 && req.max_tokens_given && req.top_k == 0);
    CHECK(req.n_stop == 1);
    CHECK_STR(req.stop[0], "x");
    dsk_openai_request_free(&req);
}

TEST(completion_every_field)
{
    dsk_openai_request req;
    dsk_openai_error e;
    CHECK(parse("{\"model\":\"m\",\"prompt\":\"Once upon\",\"max_tokens\":16,\"temperature\":0,\"logprobs\":2,"
                "\"stop\":\"\\n\",\"echo\":false,\"n\":1,\"seed\":7,\"stream\":false}",
                DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_prompts == 1 && req.prompts[0].len == 9 && req.prompts[0].ids == NULL);
    CHECK_STR(req.prompts[0].text, "Once upon");
    CHECK(req.chat == NULL);
    CHECK(req.max_tokens == 16 && req.temperature == 0);
    CHECK(req.want_logprobs && req.logprobs == 2 && req.top_logprobs == 2);
    CHECK(req.seed == 7);
    CHECK(req.n_ignored == 0 && !req.echo);
    dsk_openai_request_free(&req);
    /* an array of one string; logprobs 0 still asks for logprobs */
    CHECK(parse("{\"prompt\":[\"a\\u0000b\"],\"logprobs\":0}", DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_prompts == 1 && req.prompts[0].len == 3 && memcmp(req.prompts[0].text, "a\0b", 3) == 0);
    CHECK(req.want_logprobs && req.logprobs == 0);
    dsk_openai_request_free(&req);
    CHECK(parse("{\"prompt\":\"\"}", DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_prompts == 1 && req.prompts[0].len == 0 && !req.want_logprobs);
    dsk_openai_request_free(&req);
}

/* Token ids, several prompts, echo, and the sampling fields beyond OpenAI's chat set. */
TEST(completion_prompts_echo_and_sampling)
{
    dsk_openai_request req;
    dsk_openai_error e;
    CHECK(parse("{\"prompt\":[5,0,2147483647]}", DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_prompts == 1 && req.prompts[0].text == NULL && req.prompts[0].n_ids == 3);
    CHECK(req.prompts[0].ids[0] == 5 && req.prompts[0].ids[1] == 0 && req.prompts[0].ids[2] == 2147483647);
    dsk_openai_request_free(&req);
    CHECK(parse("{\"prompt\":[[1,2],[3],[4.0,5]],\"n\":2}", DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_prompts == 3 && req.n == 2);
    CHECK(req.prompts[0].n_ids == 2 && req.prompts[1].n_ids == 1 && req.prompts[2].n_ids == 2);
    CHECK(req.prompts[1].ids[0] == 3 && req.prompts[2].ids[0] == 4);
    dsk_openai_request_free(&req);
    CHECK(parse("{\"prompt\":[\"a\",\"\",\"ccc\"]}", DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_prompts == 3 && req.prompts[1].len == 0 && req.prompts[2].len == 3);
    CHECK_STR(req.prompts[2].text, "ccc");
    dsk_openai_request_free(&req);
    /* echo alone: max_tokens 0 scores the prompt */
    CHECK(parse("{\"prompt\":\"x\",\"echo\":true,\"max_tokens\":0,\"logprobs\":1}", DSK_OPENAI_COMPLETION, &req,
                &e) == 0);
    CHECK(req.echo && req.max_tokens == 0 && req.max_tokens_given && req.want_logprobs);
    dsk_openai_request_free(&req);
    /* the sampling fields */
    CHECK(parse("{\"prompt\":\"x\",\"logit_bias\":{\"50256\":-100,\"7\":2.5,\"0\":100},\"min_p\":0.05,"
                "\"repetition_penalty\":1.3,\"frequency_penalty\":0.5,\"presence_penalty\":-1}",
                DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_logit_bias == 3 && req.n_ignored == 0);
    CHECK(req.logit_bias[0].token == 50256 && req.logit_bias[0].bias == -100);
    CHECK(req.logit_bias[1].token == 7 && req.logit_bias[1].bias == 2.5f);
    CHECK(req.logit_bias[2].token == 0 && req.logit_bias[2].bias == 100);
    CHECK_NEAR(req.min_p, 0.05, 0);
    CHECK_NEAR(req.repetition_penalty, 1.3, 0);
    CHECK_NEAR(req.frequency_penalty, 0.5, 0);
    CHECK_NEAR(req.presence_penalty, -1, 0);
    dsk_openai_request_free(&req);
    /* defaults, and null as not given */
    CHECK(parse("{\"prompt\":\"x\",\"logit_bias\":null,\"min_p\":null,\"repetition_penalty\":null,\"echo\":null}",
                DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_logit_bias == 0 && req.min_p == 0 && req.repetition_penalty == 1 && !req.echo);
    dsk_openai_request_free(&req);
    /* chat takes the sampling fields too; echo is a completion field */
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logit_bias\":{\"3\":1},\"min_p\":0.1,"
                "\"echo\":true}", DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.n_logit_bias == 1 && req.min_p == 0.1 && !req.echo);
    CHECK(req.n_ignored == 1);
    CHECK_STR(req.ignored[0], "echo");
    dsk_openai_request_free(&req);
    /* the prompt limit */
    dsk_buf body = {0};
    dsk_buf_adds(&body, "{\"prompt\":[");
    for (int i = 0; i < lim.max_prompts; i++)
        dsk_buf_printf(&body, "%s[%d]", i ? "," : "", i);
    dsk_buf_adds(&body, "]}");
    CHECK(parse(body.data, DSK_OPENAI_COMPLETION, &req, &e) == 0 && req.n_prompts == lim.max_prompts);
    dsk_openai_request_free(&req);
    body.len -= 2;
    dsk_buf_adds(&body, ",[1]]}");
    expect_fail(body.data, DSK_OPENAI_COMPLETION, 400, "prompt");
    dsk_buf_free(&body);
}

TEST(wrong_types_name_the_param)
{
    const int C = DSK_OPENAI_CHAT, P = DSK_OPENAI_COMPLETION;
    const char *msg = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
    static const struct {
        int kind;
        const char *fields;  /* appended after messages / prompt */
        const char *param;
    } cases[] = {
        {1, "\"model\":3", "model"},
        {1, "\"max_tokens\":\"9\"", "max_tokens"},
        {1, "\"max_tokens\":0", "max_tokens"},
        {1, "\"max_tokens\":1.5", "max_tokens"},
        {1, "\"max_tokens\":1000000", "max_tokens"},
        {1, "\"max_tokens\":5,\"max_completion_tokens\":-1", "max_completion_tokens"},
        {1, "\"temperature\":\"hot\"", "temperature"},
        {1, "\"temperature\":2.5", "temperature"},
        {1, "\"temperature\":-0.1", "temperature"},
        {1, "\"top_p\":0", "top_p"},
        {1, "\"top_p\":1.01", "top_p"},
        {1, "\"top_p\":true", "top_p"},
        {1, "\"top_k\":-2", "top_k"},
        {2, "\"ignore_eos\":1", "ignore_eos"},
        {2, "\"suffix\":\"end\"", "suffix"},     /* fill in the middle: refused, not ignored */
        {2, "\"best_of\":2", "best_of"},
        {2, "\"best_of\":0", "best_of"},
        {1, "\"response_format\":\"json\"", "response_format"},
        {2, "\"echo\":true,\"response_format\":{\"type\":\"json_object\"}", "echo"},
        {1, "\"response_format\":{\"type\":\"yaml\"}", "response_format.type"},
        {1, "\"response_format\":{\"type\":1}", "response_format.type"},
        {1, "\"response_format\":{}", "response_format.type"},
        {1, "\"response_format\":{\"type\":\"json_schema\"}", "response_format.json_schema"},
        {1, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"pattern\":\"a\"}}}",
         "response_format.json_schema.schema"},
        {1, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":1,\"schema\":{}}}",
         "response_format.json_schema.name"},
        {1, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"enum\":[\"a\\u0000\"]}}}",
         "response_format.json_schema.schema"},
        /* tools and tool_choice */
        {1, "\"tool_choice\":\"auto\"", "tool_choice"},
        {1, "\"tools\":[]", "tools"},
        {1, "\"tools\":{}", "tools"},
        {1, "\"tools\":[{\"type\":\"code\"}]", "tools[0]"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{}}]", "tools[0].function.name"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]", "tools[0].function.name"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"function\",\"function\":"
            "{\"name\":\"f\"}}]", "tools[1].function.name"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]",
         "tools[0].function.parameters"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"parallel_tool_calls\":1", "parallel_tool_calls"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"strict\":true,\"parameters\":"
            "{\"pattern\":\"x\"}}}]", "tools"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"function\",\"function\":"
            "{\"name\":\"g\",\"parameters\":{\"type\":\"string\"}}}],\"tool_choice\":\"required\"", "tools"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"always\"", "tool_choice"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\","
            "\"function\":{\"name\":\"g\"}}", "tool_choice"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"pattern\":\"x\"}}}],"
            "\"tool_choice\":\"required\"", "tools"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"string\"}}}],"
            "\"tool_choice\":\"required\"", "tools"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"required\","
            "\"response_format\":{\"type\":\"json_object\"}", "response_format"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"required\","
            "\"stop\":\"}\"", "stop"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":5}}]",
         "tools[0].function.description"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"strict\":\"yes\"}}]",
         "tools[0].function.strict"},
        {1, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"\\u0000\"}}],"
            "\"tool_choice\":\"required\"", "tools"},
        {1, "\"top_k\":0.5", "top_k"},
        {1, "\"stop\":5", "stop"},
        {1, "\"stop\":[\"a\",1]", "stop[1]"},
        {1, "\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop"},
        {1, "\"stop\":\"\"", "stop"},
        {1, "\"seed\":\"1\"", "seed"},
        {1, "\"n\":0", "n"},
        {1, "\"n\":9", "n"},
        {1, "\"n\":\"2\"", "n"},
        {1, "\"stream\":1", "stream"},
        {1, "\"stream\":\"true\"", "stream"},
        {1, "\"stream\":true,\"stream_options\":[]", "stream_options"},
        {1, "\"stream\":true,\"stream_options\":{\"include_usage\":\"yes\"}", "stream_options.include_usage"},
        {1, "\"stream_options\":{\"include_usage\":true}", "stream_options"},
        {1, "\"logprobs\":1", "logprobs"},
        {1, "\"top_logprobs\":3", "top_logprobs"},
        {1, "\"logprobs\":true,\"top_logprobs\":21", "top_logprobs"},
        {1, "\"logprobs\":true,\"top_logprobs\":\"3\"", "top_logprobs"},
        {1, "\"user\":{}", "user"},
        {1, "\"frequency_penalty\":\"0\"", "frequency_penalty"},
        {1, "\"presence_penalty\":3", "presence_penalty"},
        {1, "\"min_p\":1.5", "min_p"},
        {1, "\"min_p\":\"0.1\"", "min_p"},
        {1, "\"repetition_penalty\":0", "repetition_penalty"},
        {1, "\"repetition_penalty\":101", "repetition_penalty"},
        {1, "\"logit_bias\":[]", "logit_bias"},
        {1, "\"logit_bias\":{\"x\":1}", "logit_bias"},
        {1, "\"logit_bias\":{\"-1\":1}", "logit_bias"},
        {1, "\"logit_bias\":{\"+1\":1}", "logit_bias"},
        {1, "\"logit_bias\":{\"1x\":1}", "logit_bias"},
        {1, "\"logit_bias\":{\"\":1}", "logit_bias"},
        {1, "\"logit_bias\":{\"2147483648\":1}", "logit_bias"},
        {1, "\"logit_bias\":{\"07\":1}", "logit_bias"},
        {1, "\"logit_bias\":{\"00\":1}", "logit_bias"},
        {1, "\"logit_bias\":{\"1\":101}", "logit_bias.1"},
        {1, "\"logit_bias\":{\"1\":\"2\"}", "logit_bias.1"},
        {2, "\"echo\":\"yes\"", "echo"},
        {2, "\"max_tokens\":0", "max_tokens"},
        {2, "\"echo\":true,\"max_tokens\":-1", "max_tokens"},
        {2, "\"logprobs\":6", "logprobs"},
        {2, "\"logprobs\":true", "logprobs"},
        {2, "\"max_tokens\":[]", "max_tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char body[512];
        snprintf(body, sizeof body, "{%s,%s}", cases[i].kind == 1 ? msg : "\"prompt\":\"p\"", cases[i].fields);
        expect_fail(body, cases[i].kind == 1 ? C : P, 400, cases[i].param);
    }
    /* the message structure */
    expect_fail("{\"messages\":\"hi\"}", C, 400, "messages");
    expect_fail("{\"messages\":[]}", C, 400, "messages");
    expect_fail("{\"model\":\"m\"}", C, 400, "messages");
    expect_fail("{\"messages\":null}", C, 400, "messages");
    expect_fail("{\"messages\":[3]}", C, 400, "messages[0]");
    expect_fail("{\"messages\":[{\"content\":\"x\"}]}", C, 400, "messages[0].role");
    expect_fail("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":7,\"content\":\"x\"}]}", C, 400,
                "messages[1].role");
    expect_fail("{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", C, 400, "messages[0].role");
    expect_fail("{\"messages\":[{\"role\":\"user\"}]}", C, 400, "messages[0].content");
    expect_fail("{\"messages\":[{\"role\":\"user\",\"content\":null}]}", C, 400, "messages[0].content");
    expect_fail("{\"messages\":[{\"role\":\"user\",\"content\":5}]}", C, 400, "messages[0].content");
    expect_fail("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}", C,
                400, "messages[0].content[0].type");
    expect_fail("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}", C, 400,
                "messages[0].content[0].text");
    expect_fail("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", C, 400,
                "messages[0].content[0].text");
    expect_fail("{\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}", C, 400, "messages[0].content[0]");
    /* the prompt */
    expect_fail("{\"model\":\"m\"}", P, 400, "prompt");
    expect_fail("{\"prompt\":3}", P, 400, "prompt");
    expect_fail("{\"prompt\":[]}", P, 400, "prompt");
    expect_fail("{\"prompt\":[1,-2]}", P, 400, "prompt[1]");
    expect_fail("{\"prompt\":[1,2147483648]}", P, 400, "prompt[1]");
    expect_fail("{\"prompt\":[1.5]}", P, 400, "prompt[0]");
    expect_fail("{\"prompt\":[1,\"a\"]}", P, 400, "prompt[1]");
    expect_fail("{\"prompt\":[[1],\"a\"]}", P, 400, "prompt[1]");
    expect_fail("{\"prompt\":[\"a\",[1]]}", P, 400, "prompt[1]");
    expect_fail("{\"prompt\":[[]]}", P, 400, "prompt[0]");
    expect_fail("{\"prompt\":[[1,null]]}", P, 400, "prompt[0][1]");
    expect_fail("{\"prompt\":[null]}", P, 400, "prompt[0]");
    expect_fail("{\"prompt\":[{}]}", P, 400, "prompt[0]");
    /* messages is not a completion field, prompt not a chat one */
    expect_fail("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", P, 400, "prompt");
    expect_fail("{\"prompt\":\"x\"}", C, 400, "messages");
}

TEST(bad_bodies)
{
    expect_fail("", DSK_OPENAI_CHAT, 400, NULL);
    expect_fail("{\"messages\":", DSK_OPENAI_CHAT, 400, NULL);
    expect_fail("[1,2]", DSK_OPENAI_CHAT, 400, NULL);
    expect_fail("{} {}", DSK_OPENAI_CHAT, 400, NULL);
    expect_fail("{\"prompt\":\"\xff\"}", DSK_OPENAI_COMPLETION, 400, NULL);
    dsk_openai_request req;
    dsk_openai_error e;
    parse("not json", DSK_OPENAI_CHAT, &req, &e);
    CHECK(strstr(e.message, "JSON") != NULL);
    /* message text stays printable ASCII whatever was quoted from the body */
    parse("{\"messages\":[{\"role\":\"\\n\xc3\xa9\\\"\",\"content\":\"x\"}]}", DSK_OPENAI_CHAT, &req, &e);
    CHECK(e.status == 400);
    for (const char *p = e.message; *p; p++)
        CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

TEST(limits)
{
    dsk_openai_request req;
    dsk_openai_error e;
    init_limits();
    lim.max_body = 20;
    const char *body = "{\"prompt\":\"0123456789abcdef\"}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 413);
    CHECK(e.status == 413 && e.param[0] == '\0');
    CHECK_STR(e.code, "request_too_large");
    check_error_json(&e, NULL);
    dsk_openai_request_free(&req);
    /* exactly at the limit passes */
    lim.max_body = strlen(body);
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 0);
    dsk_openai_request_free(&req);

    init_limits();
    lim.max_n = 3;
    body = "{\"prompt\":\"p\",\"n\":4}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 400);
    CHECK_STR(e.param, "n");
    CHECK_STR(e.code, "integer_above_max_value");
    body = "{\"prompt\":\"p\",\"n\":3}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 0);
    dsk_openai_request_free(&req);
    /* The value as sent, not as it saturated in an int64 */
    body = "{\"prompt\":\"p\",\"max_tokens\":9223372036854775808}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 400);
    CHECK(strstr(e.message, "but got 9223372036854775808 instead") != NULL);

    init_limits();
    lim.max_messages = 2;
    body = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"a\"},"
           "{\"role\":\"user\",\"content\":\"a\"}]}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_CHAT, &lim, &req, &e) == 400);
    CHECK_STR(e.param, "messages");

    init_limits();
    lim.max_stop_len = 3;
    body = "{\"prompt\":\"p\",\"stop\":[\"abc\",\"abcd\"]}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 400);
    CHECK_STR(e.param, "stop[1]");
    CHECK(req.n_stop == 0);  /* the first one was freed */
}

TEST(fit_context)
{
    dsk_openai_request req;
    dsk_openai_error e;
    init_limits();
    lim.ctx_len = 100;
    lim.default_max_tokens = 50;
    const char *body = "{\"prompt\":\"p\"}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 0);
    CHECK(dsk_openai_fit_context(&req, 30, &lim, &e) == 0 && req.max_tokens == 50);
    CHECK(dsk_openai_fit_context(&req, 80, &lim, &e) == 0 && req.max_tokens == 20);  /* default lowered */
    CHECK(dsk_openai_fit_context(&req, 100, &lim, &e) == 400);
    CHECK_STR(e.code, "context_length_exceeded");
    CHECK(strstr(e.message, "no room for a completion") != NULL);   /* no length was asked for */
    CHECK(dsk_openai_fit_context(&req, 0, &lim, &e) == 400);
    CHECK_STR(e.param, "prompt");
    CHECK(strstr(e.message, "empty prompt") != NULL);
    dsk_openai_request_free(&req);
    body = "{\"prompt\":\"p\",\"max_tokens\":40}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 0);
    CHECK(dsk_openai_fit_context(&req, 60, &lim, &e) == 0 && req.max_tokens == 40);
    CHECK(dsk_openai_fit_context(&req, 61, &lim, &e) == 400);  /* explicit: refused, not cut */
    CHECK_STR(e.param, "prompt");
    CHECK(strstr(e.message, "maximum context length is 100") != NULL);
    dsk_openai_request_free(&req);
    /* echo, max_tokens 0: the prompt may fill the context, not pass it */
    body = "{\"prompt\":\"p\",\"echo\":true,\"max_tokens\":0}";
    CHECK(dsk_openai_parse(body, strlen(body), DSK_OPENAI_COMPLETION, &lim, &req, &e) == 0);
    CHECK(dsk_openai_fit_context(&req, 100, &lim, &e) == 0 && req.max_tokens == 0);
    CHECK(dsk_openai_fit_context(&req, 101, &lim, &e) == 400);
    CHECK_STR(e.code, "context_length_exceeded");
    dsk_openai_request_free(&req);
}

TEST(unknown_fields_ignored_and_reported)
{
    dsk_openai_request req;
    dsk_openai_error e;
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"metadata\":{},\"logit_bias\":{\"1\":2},"
                "\"frequency_penalty\":0.5,\"presence_penalty\":0,\"weird\\\"name\\n\":null,\"prompt\":\"x\"}",
                DSK_OPENAI_CHAT, &req, &e) == 0);
    CHECK(req.n_ignored == 3);   /* logit_bias and the penalties are applied */
    CHECK_STR(req.ignored[0], "metadata");
    CHECK_STR(req.ignored[1], "weird\"name\n");
    CHECK_STR(req.ignored[2], "prompt");
    CHECK_NEAR(req.frequency_penalty, 0.5, 0);
    CHECK(req.n_logit_bias == 1);
    dsk_buf h = {0};
    dsk_openai_warning_header(&req, &h);
    CHECK_STR(h.data, "299 dsk \"ignored fields: metadata, weird?name?, prompt\"");
    dsk_buf_free(&h);
    dsk_openai_request_free(&req);

    /* a completion's suffix "" and best_of 1 ask for nothing more: taken, not named */
    CHECK(parse("{\"prompt\":\"x\",\"suffix\":\"\",\"best_of\":1}", DSK_OPENAI_COMPLETION, &req, &e) == 0);
    CHECK(req.n_ignored == 0);
    dsk_openai_request_free(&req);

    /* many unknown fields: the count is exact, the names bounded */
    dsk_buf body = {0};
    dsk_buf_adds(&body, "{\"prompt\":\"x\"");
    for (int i = 0; i < 40; i++)
        dsk_buf_printf(&body, ",\"f%02d_%0100d\":%d", i, 0, i);
    dsk_buf_adds(&body, "}");
    init_limits();
    CHECK(dsk_openai_parse(body.data, body.len, DSK_OPENAI_COMPLETION, &lim, &req, &e) == 0);
    CHECK(req.n_ignored == 40);
    CHECK(strlen(req.ignored[DSK_OPENAI_MAX_IGNORED - 1]) == 64);
    dsk_buf_clear(&body);
    dsk_openai_warning_header(&req, &body);
    CHECK(strstr(body.data, "and 24 more\"") != NULL);
    dsk_buf_free(&body);
    dsk_openai_request_free(&req);

    /* nothing ignored: no header */
    CHECK(parse("{\"prompt\":\"x\"}", DSK_OPENAI_COMPLETION, &req, &e) == 0);
    dsk_buf hh = {0};
    dsk_openai_warning_header(&req, &hh);
    CHECK(hh.len == 0);
    dsk_openai_request_free(&req);
}

/* ---- responses ---- */

static struct json_object *parse_back(const char *s, size_t n)
{
    char msg[128];
    struct json_object *o = dsk_json_parse(s, n, msg, sizeof msg);
    if (!o)
        printf("#   not JSON (%s): %.*s\n", msg, (int)n, s);
    return o;
}

static struct json_object *path(struct json_object *o, const char *keys)
{
    /* "a.b.0.c": object keys and array indices */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", keys);
    for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, ".")) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(k));
        else if (!json_object_object_get_ex(o, k, &o))
            return NULL;
    }
    return o;
}

static const char *pstr(struct json_object *o, const char *keys)
{
    struct json_object *v = path(o, keys);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int has_null(struct json_object *o, const char *keys)
{
    /* present and null */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", keys);
    char *dot = strrchr(buf, '.');
    struct json_object *parent = o, *v = NULL;
    if (dot) {
        *dot = '\0';
        parent = path(o, buf);
    }
    return parent && json_object_object_get_ex(parent, dot ? dot + 1 : buf, &v) && v == NULL;
}

TEST(chat_completion_object)
{
    static const dsk_openai_top_logprob top[] = {{"Hel", 3, -0.1}, {"He", 2, -2.5}};
    static const dsk_openai_token_logprob lps[] = {{"Hel", 3, -0.1, top, 2, 0, 0}, {"lo\xe2\x82", 4, -INFINITY, NULL, 0, 3, 0}};
    dsk_openai_choice ch[2] = {{0, "Hello", 5, DSK_FINISH_STOP, lps, 2, NULL}, {1, "Bye\xff", 4, DSK_FINISH_LENGTH, NULL, 0, NULL}};
    dsk_openai_meta m = {DSK_OPENAI_CHAT, "chatcmpl-1", "dsk-tiny", 1700000000, 0};
    dsk_openai_usage u = {12, 7};
    dsk_buf b = {0};
    dsk_openai_response_json(&m, ch, 2, &u, &b);
    struct json_object *o = parse_back(b.data, b.len);
    CHECK(o != NULL);
    CHECK_STR(pstr(o, "id"), "chatcmpl-1");
    CHECK_STR(pstr(o, "object"), "chat.completion");
    CHECK(json_object_get_int64(path(o, "created")) == 1700000000);
    CHECK_STR(pstr(o, "model"), "dsk-tiny");
    CHECK(json_object_array_length(path(o, "choices")) == 2);
    CHECK(json_object_get_int(path(o, "choices.1.index")) == 1);
    CHECK_STR(pstr(o, "choices.0.message.role"), "assistant");
    CHECK_STR(pstr(o, "choices.0.message.content"), "Hello");
    CHECK_STR(pstr(o, "choices.1.message.content"), "Bye\xef\xbf\xbd");  /* repaired */
    CHECK_STR(pstr(o, "choices.0.finish_reason"), "stop");
    CHECK_STR(pstr(o, "choices.1.finish_reason"), "length");
    CHECK(has_null(o, "choices.1.logprobs"));
    CHECK_STR(pstr(o, "choices.0.logprobs.content.0.token"), "Hel");
    CHECK_NEAR(json_object_get_double(path(o, "choices.0.logprobs.content.0.logprob")), -0.1, 1e-12);
    CHECK(json_object_array_length(path(o, "choices.0.logprobs.content.0.bytes")) == 3);
    CHECK(json_object_get_int(path(o, "choices.0.logprobs.content.0.bytes.0")) == 'H');
    CHECK_STR(pstr(o, "choices.0.logprobs.content.0.top_logprobs.1.token"), "He");
    CHECK(json_object_array_length(path(o, "choices.0.logprobs.content.0.top_logprobs.1.bytes")) == 2);
    /* a partial character: the token string is repaired, the bytes are exact */
    CHECK_STR(pstr(o, "choices.0.logprobs.content.1.token"), "lo\xef\xbf\xbd");
    CHECK(json_object_get_int(path(o, "choices.0.logprobs.content.1.bytes.3")) == 0x82);
    CHECK_NEAR(json_object_get_double(path(o, "choices.0.logprobs.content.1.logprob")), -9999.0, 0);
    CHECK(json_object_array_length(path(o, "choices.0.logprobs.content.1.top_logprobs")) == 0);
    CHECK(json_object_get_int(path(o, "usage.prompt_tokens")) == 12);
    CHECK(json_object_get_int(path(o, "usage.completion_tokens")) == 7);
    CHECK(json_object_get_int(path(o, "usage.total_tokens")) == 19);
    json_object_put(o);
    dsk_buf_free(&b);
}

TEST(text_completion_object)
{
    static const dsk_openai_top_logprob top[] = {{" b", 2, -0.2}, {" c", 2, -1.7}};
    static const dsk_openai_token_logprob lps[] = {{"\xc3\xa9t", 3, -0.3, top, 2, 10, 0}, {" b", 2, -0.2, top, 2, 12, 0}};
    dsk_openai_choice ch = {0, "\xc3\xa9t b", 5, DSK_FINISH_LENGTH, lps, 2, NULL};
    dsk_openai_meta m = {DSK_OPENAI_COMPLETION, "cmpl-1", "m", 5, 0};
    dsk_openai_usage u = {1, 2};
    dsk_buf b = {0};
    dsk_openai_response_json(&m, &ch, 1, &u, &b);
    struct json_object *o = parse_back(b.data, b.len);
    CHECK(o != NULL);
    CHECK_STR(pstr(o, "object"), "text_completion");
    CHECK_STR(pstr(o, "choices.0.text"), "\xc3\xa9t b");
    CHECK(path(o, "choices.0.message") == NULL);
    CHECK_STR(pstr(o, "choices.0.logprobs.tokens.0"), "\xc3\xa9t");
    CHECK_NEAR(json_object_get_double(path(o, "choices.0.logprobs.token_logprobs.1")), -0.2, 1e-12);
    CHECK_NEAR(json_object_get_double(path(o, "choices.0.logprobs.top_logprobs.0. c")), -1.7, 1e-12);
    CHECK(json_object_object_length(path(o, "choices.0.logprobs.top_logprobs.1")) == 2);
    /* the offsets as given (the server counts characters of the text) */
    CHECK(json_object_get_int(path(o, "choices.0.logprobs.text_offset.0")) == 10);
    CHECK(json_object_get_int(path(o, "choices.0.logprobs.text_offset.1")) == 12);
    CHECK(json_object_get_int(path(o, "usage.total_tokens")) == 3);
    json_object_put(o);
    dsk_buf_free(&b);
    /* an echoed prompt's first token: null logprob and alternatives, its offset kept */
    static const dsk_openai_token_logprob echoed[] = {{"A", 1, 0, NULL, 0, 0, 1}, {" b", 2, -0.2, top, 2, 1, 0}};
    dsk_openai_choice ech = {0, "A b", 3, DSK_FINISH_LENGTH, echoed, 2, NULL};
    dsk_openai_response_json(&m, &ech, 1, &u, &b);
    o = parse_back(b.data, b.len);
    CHECK(o != NULL);
    CHECK(json_object_array_length(path(o, "choices.0.logprobs.tokens")) == 2);
    CHECK(json_object_array_length(path(o, "choices.0.logprobs.token_logprobs")) == 2);
    CHECK(path(o, "choices.0.logprobs.token_logprobs.0") == NULL);
    CHECK(path(o, "choices.0.logprobs.top_logprobs.0") == NULL);
    CHECK_NEAR(json_object_get_double(path(o, "choices.0.logprobs.token_logprobs.1")), -0.2, 1e-12);
    CHECK(json_object_get_int(path(o, "choices.0.logprobs.text_offset.1")) == 1);
    CHECK(strstr(b.data, "\"token_logprobs\":[null,") != NULL && strstr(b.data, "\"top_logprobs\":[null,{") != NULL);
    json_object_put(o);
    dsk_buf_free(&b);
    /* alternatives holding a NUL byte keep it ("\u0000"), and stay apart from "" and "a" */
    static const dsk_openai_top_logprob nul_top[] = {{"\0", 1, -0.5}, {"a\0b", 3, -1.0}, {"a", 1, -2.0}, {"", 0, -3.0},
                                                     {"\0", 1, -4.0}};
    static const dsk_openai_token_logprob nul_lps[] = {{"\0", 1, -0.5, nul_top, 5, 0, 0}};
    dsk_openai_choice nch = {0, "\0", 1, DSK_FINISH_LENGTH, nul_lps, 1, NULL};
    dsk_openai_response_json(&m, &nch, 1, &u, &b);
    CHECK(strstr(b.data, "\"top_logprobs\":[{\"\\u0000\":-0.5,\"a\\u0000b\":-1.0,\"a\":-2.0,\"\":-3.0}]") != NULL);
    if (!strstr(b.data, "\"top_logprobs\":[{\"\\u0000\":-0.5"))
        printf("# %s\n", b.data);
    dsk_buf_free(&b);
}

/* Splits an SSE stream into its events, checking the framing: every event
 * is one "data: " line ended by a blank line.  Returns the count. */
static int split_events(const char *s, size_t n, char **ev, int max)
{
    int k = 0;
    size_t i = 0;
    while (i < n) {
        CHECK(strncmp(s + i, "data: ", 6) == 0);
        const char *end = strstr(s + i, "\n\n");
        CHECK(end != NULL);
        if (!end || k == max)
            return -1;
        size_t start = i + 6;
        CHECK(memchr(s + start, '\n', (size_t)(end - s) - start) == NULL);
        ev[k++] = dsk_xstrndup(s + start, (size_t)(end - s) - start);
        i = (size_t)(end - s) + 2;
    }
    return k;
}

TEST(chat_stream)
{
    dsk_openai_meta m = {DSK_OPENAI_CHAT, "chatcmpl-s", "dsk", 42, 1};
    dsk_buf b = {0};
    dsk_openai_sse_role(&m, 0, &b);
    dsk_openai_choice c = {0, "Hel", 3, DSK_FINISH_NONE, NULL, 0, NULL};
    dsk_openai_sse_chunk(&m, &c, &b);
    c.text = "lo";
    c.len = 2;
    dsk_openai_sse_chunk(&m, &c, &b);
    c.text = "";
    c.len = 0;
    c.finish_reason = DSK_FINISH_STOP;
    dsk_openai_sse_chunk(&m, &c, &b);
    dsk_openai_usage u = {4, 2};
    dsk_openai_sse_usage(&m, &u, &b);
    dsk_openai_sse_done(&b);
    CHECK(b.len >= 2 && strcmp(b.data + b.len - 14, "data: [DONE]\n\n") == 0);

    char *ev[16];
    int n = split_events(b.data, b.len, ev, 16);
    CHECK(n == 6);
    if (n == 6) {
        CHECK_STR(ev[5], "[DONE]");
        struct json_object *o[5];
        for (int i = 0; i < 5; i++) {
            o[i] = parse_back(ev[i], strlen(ev[i]));
            CHECK(o[i] != NULL);
            CHECK_STR(pstr(o[i], "object"), "chat.completion.chunk");
            CHECK_STR(pstr(o[i], "id"), "chatcmpl-s");
            CHECK(json_object_get_int(path(o[i], "created")) == 42);
        }
        CHECK_STR(pstr(o[0], "choices.0.delta.role"), "assistant");
        CHECK(has_null(o[0], "choices.0.finish_reason"));
        CHECK_STR(pstr(o[1], "choices.0.delta.content"), "Hel");
        CHECK(path(o[1], "choices.0.delta.role") == NULL);
        CHECK_STR(pstr(o[2], "choices.0.delta.content"), "lo");
        CHECK(has_null(o[2], "choices.0.finish_reason"));
        CHECK(json_object_object_length(path(o[3], "choices.0.delta")) == 0);
        CHECK_STR(pstr(o[3], "choices.0.finish_reason"), "stop");
        for (int i = 0; i < 4; i++)
            CHECK(has_null(o[i], "usage"));  /* include_usage: null until the last */
        CHECK(json_object_is_type(path(o[4], "choices"), json_type_array) &&
              json_object_array_length(path(o[4], "choices")) == 0);
        CHECK(json_object_get_int(path(o[4], "usage.total_tokens")) == 6);
        for (int i = 0; i < 5; i++)
            json_object_put(o[i]);
    }
    for (int i = 0; i < n; i++)
        free(ev[i]);

    /* without include_usage: no usage key at all */
    dsk_buf_clear(&b);
    m.include_usage = 0;
    c.finish_reason = DSK_FINISH_LENGTH;
    c.text = "x";
    c.len = 1;
    dsk_openai_sse_chunk(&m, &c, &b);
    struct json_object *o = parse_back(b.data + 6, b.len - 8);
    CHECK(o && path(o, "usage") == NULL && !json_object_object_get_ex(o, "usage", NULL));
    CHECK_STR(pstr(o, "choices.0.delta.content"), "x");
    CHECK_STR(pstr(o, "choices.0.finish_reason"), "length");
    json_object_put(o);
    dsk_buf_free(&b);
}

/* Calls streamed: each call's first event names it and the later ones
 * add arguments, and the final chunk says "tool_calls" alone. */
TEST(tool_call_objects)
{
    dsk_openai_meta m = {DSK_OPENAI_CHAT, "chatcmpl-ab12", "dsk", 1, 0};
    struct json_object *whole = json_tokener_parse("[{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}]");
    dsk_buf b = {0};
    dsk_openai_sse_role(&m, 0, &b);
    dsk_openai_sse_call(&m, 0, 0, "get_weather", "{\"city\":", 8, &b);
    dsk_openai_sse_call(&m, 0, 0, NULL, "\"Oslo\"}", 7, &b);
    dsk_openai_sse_call(&m, 0, 1, "get_time", "", 0, &b);
    dsk_openai_choice c = {0, "", 0, DSK_FINISH_STOP, NULL, 0, whole};
    dsk_openai_sse_chunk(&m, &c, &b);
    char *ev[8];
    int n = split_events(b.data, b.len, ev, 8);
    CHECK(n == 5);
    if (n == 5) {
        struct json_object *e[5];
        for (int i = 0; i < 5; i++)
            e[i] = parse_back(ev[i], strlen(ev[i]));
        CHECK_STR(pstr(e[0], "choices.0.delta.role"), "assistant");
        CHECK(json_object_get_int(path(e[1], "choices.0.delta.tool_calls.0.index")) == 0);
        CHECK_STR(pstr(e[1], "choices.0.delta.tool_calls.0.id"), "call_ab120000");
        CHECK_STR(pstr(e[1], "choices.0.delta.tool_calls.0.type"), "function");
        CHECK_STR(pstr(e[1], "choices.0.delta.tool_calls.0.function.name"), "get_weather");
        CHECK_STR(pstr(e[1], "choices.0.delta.tool_calls.0.function.arguments"), "{\"city\":");
        CHECK(has_null(e[1], "choices.0.finish_reason"));
        CHECK(path(e[2], "choices.0.delta.content") == NULL);
        CHECK(path(e[2], "choices.0.delta.tool_calls.0.id") == NULL);
        CHECK(path(e[2], "choices.0.delta.tool_calls.0.function.name") == NULL);
        CHECK(json_object_get_int(path(e[2], "choices.0.delta.tool_calls.0.index")) == 0);
        CHECK_STR(pstr(e[2], "choices.0.delta.tool_calls.0.function.arguments"), "\"Oslo\"}");
        CHECK(json_object_get_int(path(e[3], "choices.0.delta.tool_calls.0.index")) == 1);
        CHECK_STR(pstr(e[3], "choices.0.delta.tool_calls.0.id"), "call_ab120001");
        CHECK_STR(pstr(e[3], "choices.0.delta.tool_calls.0.function.arguments"), "");
        CHECK(json_object_object_length(path(e[4], "choices.0.delta")) == 0);
        CHECK_STR(pstr(e[4], "choices.0.finish_reason"), "tool_calls");
        for (int i = 0; i < 5; i++)
            json_object_put(e[i]);
    }
    for (int i = 0; i < n; i++)
        free(ev[i]);
    dsk_buf_free(&b);
    json_object_put(whole);
}

TEST(tool_messages_checked)
{
    const int C = DSK_OPENAI_CHAT;
    static const struct {
        const char *messages, *param;
    } cases[] = {
        {"{\"role\":\"tool\",\"content\":\"r\"}", "messages[0].tool_call_id"},
        {"{\"role\":\"tool\",\"tool_call_id\":5,\"content\":\"r\"}", "messages[0].tool_call_id"},
        {"{\"role\":\"tool\",\"tool_call_id\":\"c\"}", "messages[0].content"},
        {"{\"role\":\"assistant\",\"tool_calls\":{}}", "messages[0].tool_calls"},
        {"{\"role\":\"assistant\",\"tool_calls\":[]}", "messages[0].tool_calls"},
        {"{\"role\":\"assistant\",\"tool_calls\":[5]}", "messages[0].tool_calls[0]"},
        {"{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
         "\"arguments\":\"{}\"}}]}", "messages[0].tool_calls[0].id"},
        {"{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":"
         "\"f\"}}]}", "messages[0].tool_calls[0].function.arguments"},
        {"{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":"
         "\"f\",\"arguments\":{}}}]}", "messages[0].tool_calls[0].function.arguments"},
        /* what the template cannot write: arguments that are no JSON object, another type */
        {"{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":"
         "\"f\",\"arguments\":\"[1]\"}}]}", "messages[0].tool_calls"},
        {"{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":"
         "\"f\",\"arguments\":\"{\\\"a\\\":\"}}]}", "messages[0].tool_calls"},
        {"{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"code\",\"function\":{\"name\":"
         "\"f\",\"arguments\":\"{}\"}}]}", "messages[0].tool_calls"},
        {"{\"role\":\"bot\",\"content\":\"x\"}", "messages[0].role"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"messages\":[%s]}", cases[i].messages);
        expect_fail(body, C, 400, cases[i].param);
    }
}

/* Calls whole: each with its id, the text before them the content (null
 * when there is none), finish_reason "tool_calls"; a call cut short keeps
 * its arguments as far as they went, with finish_reason "length". */
TEST(made_call_objects)
{
    dsk_openai_meta m = {DSK_OPENAI_CHAT, "chatcmpl-ab12", "dsk", 1, 0};
    struct json_object *calls = json_tokener_parse("[{\"name\":\"w\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"},"
                                                   "{\"name\":\"t\",\"arguments\":\"{}\"}]");
    struct json_object *cut = json_tokener_parse("[{\"name\":\"w\",\"arguments\":\"{\\\"ci\"}]");
    dsk_openai_choice ch[3] = {{0, "", 0, DSK_FINISH_STOP, NULL, 0, calls},
                               {1, "Let me look.", 12, DSK_FINISH_STOP, NULL, 0, calls},
                               {2, "", 0, DSK_FINISH_LENGTH, NULL, 0, cut}};
    dsk_openai_usage u = {3, 9};
    dsk_buf b = {0};
    dsk_openai_response_json(&m, ch, 3, &u, &b);
    struct json_object *o = parse_back(b.data, b.len);
    CHECK(o != NULL);
    CHECK(has_null(o, "choices.0.message.content"));
    CHECK_STR(pstr(o, "choices.0.message.role"), "assistant");
    CHECK_STR(pstr(o, "choices.2.message.tool_calls.0.id"), "call_ab120200");
    CHECK_STR(pstr(o, "choices.2.message.tool_calls.0.function.arguments"), "{\"ci");
    CHECK_STR(pstr(o, "choices.2.finish_reason"), "length");
    CHECK_STR(pstr(o, "choices.1.message.content"), "Let me look.");
    CHECK_STR(pstr(o, "choices.0.message.tool_calls.0.id"), "call_ab120000");
    CHECK_STR(pstr(o, "choices.0.message.tool_calls.1.id"), "call_ab120001");
    CHECK_STR(pstr(o, "choices.1.message.tool_calls.0.id"), "call_ab120100");
    CHECK_STR(pstr(o, "choices.0.message.tool_calls.0.type"), "function");
    CHECK_STR(pstr(o, "choices.0.message.tool_calls.0.function.name"), "w");
    CHECK_STR(pstr(o, "choices.0.message.tool_calls.0.function.arguments"), "{\"city\":\"Oslo\"}");
    CHECK_STR(pstr(o, "choices.0.message.tool_calls.1.function.name"), "t");
    CHECK(path(o, "choices.0.message.tool_calls.0.index") == NULL);
    CHECK_STR(pstr(o, "choices.0.finish_reason"), "tool_calls");
    CHECK_STR(pstr(o, "choices.1.finish_reason"), "tool_calls");
    json_object_put(o);
    dsk_buf_free(&b);
    json_object_put(calls);
    json_object_put(cut);
}

TEST(completion_stream_and_error_event)
{
    dsk_openai_meta m = {DSK_OPENAI_COMPLETION, "cmpl-s", "dsk", 1, 0};
    static const dsk_openai_token_logprob lp[] = {{"ab", 2, -0.5, NULL, 0, 7, 0}};
    dsk_openai_choice c = {2, "ab\ncd", 5, DSK_FINISH_NONE, lp, 1, NULL};
    dsk_buf b = {0};
    dsk_openai_sse_chunk(&m, &c, &b);
    dsk_openai_error e;
    dsk_openai_fail(&e, 500, NULL, "internal_error", "the model failed: %s", "line\nbreak");
    dsk_openai_sse_error(&e, &b);
    dsk_openai_sse_done(&b);
    char *ev[8];
    int n = split_events(b.data, b.len, ev, 8);
    CHECK(n == 3);
    if (n == 3) {
        struct json_object *o = parse_back(ev[0], strlen(ev[0]));
        CHECK_STR(pstr(o, "object"), "text_completion");
        CHECK(json_object_get_int(path(o, "choices.0.index")) == 2);
        CHECK_STR(pstr(o, "choices.0.text"), "ab\ncd");
        CHECK(json_object_get_int(path(o, "choices.0.logprobs.text_offset.0")) == 7);
        CHECK(has_null(o, "choices.0.finish_reason"));
        json_object_put(o);
        o = parse_back(ev[1], strlen(ev[1]));
        CHECK_STR(pstr(o, "error.code"), "internal_error");
        CHECK_STR(pstr(o, "error.message"), "the model failed: line?break");
        CHECK(has_null(o, "error.param"));
        json_object_put(o);
        CHECK_STR(ev[2], "[DONE]");
    }
    for (int i = 0; i < n; i++)
        free(ev[i]);
    dsk_buf_free(&b);
}

TEST(models_and_ids)
{
    const char *ids[] = {"dsk-tiny", "dsk-tiny-q4"};
    dsk_buf b = {0};
    dsk_openai_models_json(ids, 2, 1700000001, NULL, &b);
    struct json_object *o = parse_back(b.data, b.len);
    CHECK_STR(pstr(o, "object"), "list");
    CHECK(json_object_array_length(path(o, "data")) == 2);
    CHECK_STR(pstr(o, "data.1.id"), "dsk-tiny-q4");
    CHECK_STR(pstr(o, "data.0.object"), "model");
    CHECK_STR(pstr(o, "data.0.owned_by"), "dsk");
    CHECK(json_object_get_int64(path(o, "data.0.created")) == 1700000001);
    json_object_put(o);
    dsk_buf_free(&b);
    char id[40];
    dsk_openai_make_id(DSK_OPENAI_CHAT, 0xabcULL, id);
    CHECK_STR(id, "chatcmpl-0000000000000abc");
    dsk_openai_make_id(DSK_OPENAI_COMPLETION, UINT64_MAX, id);
    CHECK_STR(id, "cmpl-ffffffffffffffff");
}

/* ---- stop sequences ---- */

/* Feeds pieces one by one as a server would, collecting what is streamed;
 * returns the streamed text (caller frees) and whether a stop matched. */
static char *stream_pieces(const char *const *pieces, char *const *stops, int n_stops, int *matched, int *which)
{
    dsk_buf text = {0}, sent = {0};
    size_t safe = 0;
    dsk_openai_stop_result r = {0};
    dsk_buf_adds(&text, "");
    for (int i = 0; pieces[i]; i++) {
        dsk_buf_adds(&text, pieces[i]);
        dsk_openai_stop_check(text.data, text.len, safe, stops, n_stops, &r);
        CHECK(r.safe >= safe && r.safe <= text.len);  /* never takes back what was sent */
        dsk_buf_add(&sent, text.data + safe, r.safe - safe);
        safe = r.safe;
        if (r.matched)
            break;
    }
    if (!r.matched)  /* generation ended otherwise: the rest is final */
        dsk_buf_add(&sent, text.data + safe, text.len - safe);
    *matched = r.matched;
    *which = r.which;
    dsk_buf_free(&text);
    if (!sent.data)
        dsk_buf_adds(&sent, "");
    return sent.data;
}

TEST(stop_split_across_tokens)
{
    char *stops[] = {"\n\nUser:"};
    const char *pieces[] = {"Hi", " there", "\n", "\nUs", "er", ":", " more", NULL};
    int matched, which;
    char *s = stream_pieces(pieces, stops, 1, &matched, &which);
    CHECK(matched && which == 0);
    CHECK_STR(s, "Hi there");
    free(s);

    /* the step-by-step hold-back */
    dsk_openai_stop_result r;
    dsk_openai_stop_check("Hi there\n", 9, 0, stops, 1, &r);
    CHECK(!r.matched && r.safe == 8 && r.which == -1);
    dsk_openai_stop_check("Hi there\n\nUs", 12, 8, stops, 1, &r);
    CHECK(!r.matched && r.safe == 8);
    /* a false start is released once it can no longer match */
    dsk_openai_stop_check("Hi there\n\nUx", 12, 8, stops, 1, &r);
    CHECK(!r.matched && r.safe == 12);
    const char *p2[] = {"a\n", "\nUse", "d to", NULL};
    s = stream_pieces(p2, stops, 1, &matched, &which);
    CHECK(!matched);
    CHECK_STR(s, "a\n\nUsed to");
    free(s);
}

TEST(stop_multiple_and_overlapping)
{
    int matched, which;
    /* the earliest start wins when one token completes two */
    char *s2[] = {"cd", "bcd"};
    dsk_openai_stop_result r;
    dsk_openai_stop_check("xabcde", 6, 0, s2, 2, &r);
    CHECK(r.matched && r.which == 1 && r.safe == 2);
    /* ...but a stop completed earlier ends generation before a longer one can */
    char *s3[] = {"abc", "b"};
    const char *p3[] = {"x", "a", "b", "c", NULL};
    char *s = stream_pieces(p3, s3, 2, &matched, &which);
    CHECK(matched && which == 1);
    CHECK_STR(s, "xa");
    free(s);
    /* overlapping prefixes: "aab" inside "aaab" — the hold-back must keep
     * the second 'a', not give up on the first mismatch */
    char *s4[] = {"aab"};
    dsk_openai_stop_check("xaa", 3, 0, s4, 1, &r);
    CHECK(!r.matched && r.safe == 1);
    dsk_openai_stop_check("xaaa", 4, 1, s4, 1, &r);
    CHECK(!r.matched && r.safe == 2);
    dsk_openai_stop_check("xaaab", 5, 2, s4, 1, &r);
    CHECK(r.matched && r.safe == 2);
    const char *p4[] = {"x", "a", "a", "a", "b", NULL};
    s = stream_pieces(p4, s4, 1, &matched, &which);
    CHECK(matched);
    CHECK_STR(s, "xa");
    free(s);
    /* the longest held suffix among several stops */
    char *s5[] = {"END", "ENOUGH", "x"};
    dsk_openai_stop_check("the EN", 6, 0, s5, 3, &r);
    CHECK(!r.matched && r.safe == 4);
    dsk_openai_stop_check("the ENO", 7, 4, s5, 3, &r);
    CHECK(!r.matched && r.safe == 4);
    dsk_openai_stop_check("the ENOX", 8, 4, s5, 3, &r);
    CHECK(!r.matched && r.safe == 8);
    /* a stop at the very start, and no stops at all */
    char *s6[] = {"Q"};
    dsk_openai_stop_check("Qabc", 4, 0, s6, 1, &r);
    CHECK(r.matched && r.safe == 0);
    dsk_openai_stop_check("abc", 3, 0, NULL, 0, &r);
    CHECK(!r.matched && r.safe == 3);
}

TEST(stop_never_splits_utf8)
{
    dsk_openai_stop_result r;
    /* "é" is C3 A9, "€" E2 82 AC: an incomplete tail is held back */
    dsk_openai_stop_check("ab\xc3", 3, 0, NULL, 0, &r);
    CHECK(r.safe == 2);
    dsk_openai_stop_check("ab\xe2\x82", 4, 2, NULL, 0, &r);
    CHECK(r.safe == 2);
    dsk_openai_stop_check("ab\xe2\x82\xac", 5, 2, NULL, 0, &r);
    CHECK(r.safe == 5);
    /* a stop string starting with a continuation byte of the last character */
    char *stops[] = {"\xa9!"};
    dsk_openai_stop_check("x\xc3\xa9", 3, 0, stops, 1, &r);
    CHECK(!r.matched && r.safe == 1);
    /* streamed pieces cut inside characters still come out whole */
    char *st[] = {"\xe2\x82\xac\xe2\x82\xac"};
    const char *pieces[] = {"1\xe2", "\x82\xac", "\xe2\x82", "\xac", "2", NULL};
    int matched, which;
    char *s = stream_pieces(pieces, st, 1, &matched, &which);
    CHECK(matched);
    CHECK_STR(s, "1");
    free(s);
}

RUN_TESTS(T(chat_every_field), T(chat_defaults), T(completion_every_field), T(wrong_types_name_the_param),
          T(bad_bodies), T(limits), T(fit_context), T(completion_prompts_echo_and_sampling), T(unknown_fields_ignored_and_reported), T(chat_completion_object),
          T(text_completion_object), T(chat_stream), T(tool_call_objects), T(tool_messages_checked), T(made_call_objects), T(completion_stream_and_error_event), T(models_and_ids),
          T(stop_split_across_tokens), T(stop_multiple_and_overlapping), T(stop_never_splits_utf8))
