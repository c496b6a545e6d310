/* GGUF: the block formats (sizes, layouts, error bounds), the container
 * (write -> read round trip, corrupt input refused), and the export of a
 * small synthetic checkpoint (names, permutation, fallbacks, refusals). */
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpe/formats.h"
#include "core/buf.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "quant/gguf.h"
#include "test.h"

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char path[160];
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/dsk-gguf-XXXXXX");
        if (!mkdtemp(tmpdir))
            abort();
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

/* Deterministic pseudo-normal values (sum of uniforms). */
static uint64_t rng_state = 12345;
static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / (float)0x1000000;
}
static float gauss(void) { return (frand() + frand() + frand() + frand() - 2.0f) * 1.7320508f; }

static float half_at(const uint8_t *p) { return dsk_ggml_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

/* ---- half precision ---------------------------------------------------------------------------- */

TEST(fp16_conversions)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dsk_ggml_fp16_to_fp32((uint16_t)h);
        if (((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff))
            bad += !isnan(f) || !(dsk_ggml_fp32_to_fp16(f) & 0x3ff);
        else
            bad += dsk_ggml_fp32_to_fp16(f) != h;
    }
    CHECK(bad == 0);
    CHECK(dsk_ggml_fp32_to_fp16(1.0f) == 0x3c00);
    CHECK(dsk_ggml_fp32_to_fp16(-2.0f) == 0xc000);
    CHECK(dsk_ggml_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(dsk_ggml_fp32_to_fp16(65519.0f) == 0x7bff);
    CHECK(dsk_ggml_fp32_to_fp16(65520.0f) == 0x7c00);
    CHECK(dsk_ggml_fp32_to_fp16(1e10f) == 0x7c00);
    CHECK(dsk_ggml_fp32_to_fp16(0x1p-24f) == 0x0001);
    CHECK(dsk_ggml_fp32_to_fp16(0x1p-25f) == 0x0000);              /* tie: to even */
    CHECK(dsk_ggml_fp32_to_fp16(0x1.8p-25f) == 0x0001);
    CHECK(dsk_ggml_fp32_to_fp16(0x3p-25f) == 0x0002);              /* 1.5 units: tie to even 2 */
    CHECK(dsk_ggml_fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);        /* tie: to even */
    CHECK(dsk_ggml_fp32_to_fp16(1.0f + 0x3p-11f) == 0x3c02);
    CHECK(dsk_ggml_fp32_to_fp16(0x1.ffcp-15f) == 0x0400);          /* subnormal rounding up into normal */
}

/* ---- block formats ------------------------------------------------------------------------------ */

TEST(block_sizes_and_names)
{
    uint64_t b;
    CHECK(dsk_ggml_nbytes(DSK_GGUF_Q4_0, 32, &b) == 0 && b == 18);
    CHECK(dsk_ggml_nbytes(DSK_GGUF_Q8_0, 32, &b) == 0 && b == 34);
    CHECK(dsk_ggml_nbytes(DSK_GGUF_Q4_K, 256, &b) == 0 && b == 144);
    CHECK(dsk_ggml_nbytes(DSK_GGUF_Q4_K, 512, &b) == 0 && b == 288);
    CHECK(dsk_ggml_nbytes(DSK_GGUF_F16, 3, &b) == 0 && b == 6);
    CHECK(dsk_ggml_nbytes(DSK_GGUF_F32, 3, &b) == 0 && b == 12);
    CHECK(dsk_ggml_nbytes(DSK_GGUF_Q4_0, 48, &b) == -1);
    CHECK(dsk_ggml_nbytes(DSK_GGUF_Q4_K, 32, &b) == -1);
    CHECK(dsk_ggml_nbytes(3, 32, &b) == -1);
    CHECK(dsk_ggml_nbytes(DSK_GGUF_F32, UINT64_MAX / 2, &b) == -1);
    CHECK(dsk_ggml_block_len(DSK_GGUF_Q4_K) == 256 && dsk_ggml_block_bytes(DSK_GGUF_Q8_0) == 34);
    static const int all[] = {DSK_GGUF_F32, DSK_GGUF_F16, DSK_GGUF_Q4_0, DSK_GGUF_Q8_0, DSK_GGUF_Q4_K};
    for (size_t i = 0; i < 5; i++)
        CHECK(dsk_ggml_type_from_name(dsk_ggml_type_name(all[i])) == all[i]);
    CHECK(dsk_ggml_type_from_name("Q4_K") == DSK_GGUF_Q4_K);
    CHECK(dsk_ggml_type_from_name("q5_0") == -1 && dsk_ggml_type_name(6) == NULL);
}

TEST(q8_0_error_within_half_a_step)
{
    enum { N = 32 * 64 };
    float x[N], y[N];
    uint8_t q[N / 32 * 34];
    for (int i = 0; i < N; i++)
        x[i] = gauss() * (i < 32 ? 0 : i < 64 ? 1e-3f : 3.0f);   /* an all-zero block, a tiny one */
    dsk_ggml_quantize(DSK_GGUF_Q8_0, x, q, N);
    dsk_ggml_dequantize(DSK_GGUF_Q8_0, q, y, N);
    int bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float d = half_at(q + 34 * b), amax = 0;
        for (int i = 0; i < 32; i++) {
            amax = fmaxf(amax, fabsf(x[32 * b + i]));
            if (!(fabsf(y[32 * b + i] - x[32 * b + i]) <= d / 2 * (1 + 1e-5f) + 1e-30f))
                bad++;
        }
        bad += fabsf(d - amax / 127) > amax / 127 * 0x1p-10f;   /* the scale is max|x|/127, as a half */
    }
    CHECK(bad == 0);
    for (int i = 0; i < 32; i++)
        CHECK(y[i] == 0);
}

TEST(q4_0_layout_and_error_bound)
{
    /* values -8..7 times 0.5: exact, codes 0..15, byte j = q[j] | q[j+16] << 4 */
    float x[32], y[32];
    uint8_t q[18];
    for (int i = 0; i < 32; i++)
        x[i] = (float)((i % 16) - 8) * 0.5f;
    dsk_ggml_quantize(DSK_GGUF_Q4_0, x, q, 32);
    CHECK(q[0] == 0x00 && q[1] == 0x38);   /* fp16 0.5 */
    for (int j = 0; j < 16; j++)
        CHECK(q[2 + j] == (uint8_t)(j | j << 4));
    dsk_ggml_dequantize(DSK_GGUF_Q4_0, q, y, 32);
    for (int i = 0; i < 32; i++)
        CHECK(y[i] == x[i]);

    /* random blocks: within d/2, except values past +7.5 steps (code 15,
     * the clamped side), within one step d */
    enum { N = 32 * 128 };
    static float a[N], b[N];
    static uint8_t qa[N / 32 * 18];
    for (int i = 0; i < N; i++)
        a[i] = gauss() * 0.05f;
    dsk_ggml_quantize(DSK_GGUF_Q4_0, a, qa, N);
    dsk_ggml_dequantize(DSK_GGUF_Q4_0, qa, b, N);
    int bad = 0, clamped = 0;
    for (int blk = 0; blk < N / 32; blk++) {
        float d = half_at(qa + 18 * blk), ad = fabsf(d);
        for (int i = 0; i < 32; i++) {
            float xv = a[32 * blk + i], e = fabsf(b[32 * blk + i] - xv);
            if (xv / d > 7.5f) {
                clamped++;
                bad += !(e <= ad * (1 + 1e-5f));
            } else
                bad += !(e <= ad / 2 * (1 + 1e-5f));
        }
    }
    CHECK(bad == 0);
    CHECK(clamped < N / 20);
}

/* The (sc, m) of sub-block j, decoded here from the layout in ggml_quant.h
 * independently of the library. */
static void q4k_scale(const uint8_t *blk, int j, int *sc, int *m)
{
    const uint8_t *s = blk + 4;
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static int q4k_code(const uint8_t *blk, int i)   /* code of value i (0..255) */
{
    int c = i / 64, l = i % 32, hi = (i % 64) >= 32;
    uint8_t byte = blk[16 + 32 * c + l];
    return hi ? byte >> 4 : byte & 15;
}

TEST(q4_K_exact_values_and_layout)
{
    /* values that are exactly d*sc*q - dmin*m, with scales over 15 in the
     * upper sub-blocks so the 2-bit high parts are exercised */
    static const int sc[8] = {63, 40, 17, 5, 1, 33, 50, 62}, mn[8] = {63, 0, 10, 20, 30, 1, 2, 44};
    const float d = 1.0f / 256, dmin = 1.0f / 512;
    float x[256], y[256];
    uint8_t q[144];
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 32; i++)
            x[32 * j + i] = d * (float)sc[j] * (float)((i * 7 + j) % 16) - dmin * (float)mn[j];
    dsk_ggml_quantize(DSK_GGUF_Q4_K, x, q, 256);
    CHECK(half_at(q) == d && half_at(q + 2) == dmin);
    for (int j = 0; j < 8; j++) {
        int s, m;
        q4k_scale(q, j, &s, &m);
        CHECK(s == sc[j] && m == mn[j]);
    }
    for (int i = 0; i < 256; i++)
        CHECK(q4k_code(q, i) == (i % 32 * 7 + i / 32) % 16);
    dsk_ggml_dequantize(DSK_GGUF_Q4_K, q, y, 256);
    int bad = 0;
    for (int i = 0; i < 256; i++)
        bad += y[i] != x[i];
    CHECK(bad == 0);
}

TEST(q4_K_error_bound)
{
    enum { N = 256 * 64 };
    static float x[N], y[N], y0[N];
    static uint8_t q[N / 256 * 144], q0[N / 32 * 18];
    for (int i = 0; i < N; i++)
        x[i] = gauss() * 0.02f + (i % 256 < 32 ? 0.01f : 0);   /* one sub-block off-centre */
    dsk_ggml_quantize(DSK_GGUF_Q4_K, x, q, N);
    dsk_ggml_dequantize(DSK_GGUF_Q4_K, q, y, N);
    int bad = 0, inside = 0;
    double se = 0, se0 = 0, sx = 0;
    for (int b = 0; b < N / 256; b++) {
        const uint8_t *blk = q + 144 * b;
        float d = half_at(blk), dmin = half_at(blk + 2);
        for (int i = 0; i < 256; i++) {
            int s, m;
            q4k_scale(blk, i / 32, &s, &m);
            float S = d * (float)s, M = dmin * (float)m, xv = x[256 * b + i], yv = y[256 * b + i];
            /* the decoder is y = S*code - M */
            bad += fabsf(yv - (S * (float)q4k_code(blk, i) - M)) > 1e-7f;
            if (xv >= -M && xv <= 15 * S - M) {   /* inside the sub-block's range: nearest code */
                inside++;
                bad += !(fabsf(yv - xv) <= S / 2 * (1 + 1e-4f) + 1e-7f);
            }
            se += (double)(yv - xv) * (yv - xv);
            sx += (double)xv * xv;
        }
    }
    CHECK(bad == 0);
    CHECK(inside > N * 9 / 10);
    dsk_ggml_quantize(DSK_GGUF_Q4_0, x, q0, N);
    dsk_ggml_dequantize(DSK_GGUF_Q4_0, q0, y0, N);
    for (int i = 0; i < N; i++)
        se0 += (double)(y0[i] - x[i]) * (y0[i] - x[i]);
    double rel = sqrt(se / sx), rel0 = sqrt(se0 / sx);
    /* 16 levels over ~±2.5 sigma: a step of ~0.3 sigma, rms ~0.09 sigma */
    CHECK(rel < 0.11);
    CHECK(rel < rel0);   /* min and 6-bit sub-scales beat q4_0's symmetric blocks */
    printf("# q4_K relative rms error %.4f, q4_0 %.4f\n", rel, rel0);
}

TEST(f16_and_f32_round_trip)
{
    float x[7] = {0, 1, -1.5f, 3.14159f, 1e-6f, 60000, -0.1f}, y[7];
    uint8_t b[28];
    dsk_ggml_quantize(DSK_GGUF_F32, x, b, 7);
    dsk_ggml_dequantize(DSK_GGUF_F32, b, y, 7);
    CHECK(memcmp(x, y, sizeof x) == 0);
    dsk_ggml_quantize(DSK_GGUF_F16, x, b, 7);
    dsk_ggml_dequantize(DSK_GGUF_F16, b, y, 7);
    for (int i = 0; i < 7; i++)
        CHECK(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-11f + 0x1p-25f);
}

/* ---- RoPE permutation ----------------------------------------------------------------------------- */

TEST(rope_permutation_known_matrix)
{
    /* 2 heads of 4 rows, 2 columns: row r holds (r, 10r) */
    float in[16], out[16];
    for (int r = 0; r < 8; r++) {
        in[2 * r] = (float)r;
        in[2 * r + 1] = 10.0f * (float)r;
    }
    dsk_gguf_permute_rope(out, in, 2, 4, 2);
    static const int want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int r = 0; r < 8; r++)
        CHECK(out[2 * r] == (float)want[r] && out[2 * r + 1] == 10.0f * (float)want[r]);
}

/* RoPE on one head's vector v[hd] at position p, in either convention. */
static void rope(float *v, int hd, int p, int interleaved)
{
    for (int i = 0; i < hd / 2; i++) {
        double a = p * pow(10000.0, -2.0 * i / hd), c = cos(a), s = sin(a);
        int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + hd / 2;
        float x0 = v[i0], x1 = v[i1];
        v[i0] = (float)(x0 * c - x1 * s);
        v[i1] = (float)(x1 * c + x0 * s);
    }
}

TEST(rope_permutation_preserves_attention_scores)
{
    /* q·k after rotate-half RoPE with the HF weights equals q·k after
     * interleaved RoPE with the permuted weights, per head, at any pair of
     * positions: the export changes nothing the model computes */
    enum { HD = 8, H = 2, C = 5 };
    float wq[H * HD * C], wk[H * HD * C], pq[H * HD * C], pk[H * HD * C], xq[C], xk[C];
    for (int i = 0; i < H * HD * C; i++) {
        wq[i] = gauss();
        wk[i] = gauss();
    }
    for (int i = 0; i < C; i++) {
        xq[i] = gauss();
        xk[i] = gauss();
    }
    dsk_gguf_permute_rope(pq, wq, H, HD, C);
    dsk_gguf_permute_rope(pk, wk, H, HD, C);
    for (int h = 0; h < H; h++)
        for (int pos = 0; pos < 20; pos += 7) {
            float q1[HD], k1[HD], q2[HD], k2[HD];
            for (int r = 0; r < HD; r++) {
                q1[r] = k1[r] = q2[r] = k2[r] = 0;
                for (int c = 0; c < C; c++) {
                    q1[r] += wq[(h * HD + r) * C + c] * xq[c];
                    k1[r] += wk[(h * HD + r) * C + c] * xk[c];
                    q2[r] += pq[(h * HD + r) * C + c] * xq[c];
                    k2[r] += pk[(h * HD + r) * C + c] * xk[c];
                }
            }
            rope(q1, HD, pos, 0);
            rope(k1, HD, 3, 0);
            rope(q2, HD, pos, 1);
            rope(k2, HD, 3, 1);
            double s1 = 0, s2 = 0;
            for (int r = 0; r < HD; r++) {
                s1 += q1[r] * k1[r];
                s2 += q2[r] * k2[r];
            }
            CHECK_NEAR(s2, s1, 1e-4 * (1 + fabs(s1)));
        }
}

TEST(weight_type_fallback)
{
    CHECK(dsk_gguf_weight_type(DSK_GGUF_Q4_K, 512) == DSK_GGUF_Q4_K);
    CHECK(dsk_gguf_weight_type(DSK_GGUF_Q4_K, 704) == DSK_GGUF_Q8_0);
    CHECK(dsk_gguf_weight_type(DSK_GGUF_Q4_K, 100) == DSK_GGUF_F16);
    CHECK(dsk_gguf_weight_type(DSK_GGUF_Q4_0, 64) == DSK_GGUF_Q4_0);
    CHECK(dsk_gguf_weight_type(DSK_GGUF_Q4_0, 48) == DSK_GGUF_F16);
    CHECK(dsk_gguf_weight_type(DSK_GGUF_Q8_0, 48) == DSK_GGUF_F16);
    CHECK(dsk_gguf_weight_type(DSK_GGUF_F32, 7) == DSK_GGUF_F32);
    CHECK(dsk_gguf_weight_type(DSK_GGUF_F16, 7) == DSK_GGUF_F16);
}

TEST(pre_tokenizer_names)
{
    CHECK_STR(dsk_gguf_pre_tokenizer_name(dsk_bpe_named_pattern("cl100k")), "llama-bpe");
    CHECK_STR(dsk_gguf_pre_tokenizer_name(dsk_bpe_named_pattern("gpt2")), "gpt-2");
    CHECK_STR(dsk_gguf_pre_tokenizer_name(dsk_bpe_named_pattern("o200k")), "gpt-4o");
    CHECK(dsk_gguf_pre_tokenizer_name("\\w+|\\s+") == NULL);
}

/* ---- container ------------------------------------------------------------------------------------- */

/* A small file with every value type and every tensor type; returns its
 * bytes in out. */
static void write_sample(const char *path, dsk_buf *out, float *src, size_t n_src)
{
    for (size_t i = 0; i < n_src; i++)
        src[i] = gauss();
    dsk_gguf_writer *w = dsk_gguf_writer_new();
    dsk_gguf_add_str(w, "general.architecture", "llama");
    dsk_gguf_add_u32(w, "u32", 4000000000u);
    dsk_gguf_add_i32(w, "i32", -7);
    dsk_gguf_add_u64(w, "u64", 1ull << 40);
    dsk_gguf_add_f32(w, "f32", 0.25f);
    dsk_gguf_add_bool(w, "bool", 1);
    const char *strs[] = {"a", "", "Ġthe"};
    size_t lens[] = {1, 0, strlen("Ġthe")};
    dsk_gguf_add_str_array(w, "strs", strs, lens, 3);
    int32_t ints[] = {1, -2, 3};
    dsk_gguf_add_i32_array(w, "ints", ints, 3);
    double f64[] = {1.5, -2.25};
    dsk_gguf_add_array(w, "f64s", DSK_GGUF_FLOAT64, f64, 2);
    int8_t i8[] = {-128, 127};
    dsk_gguf_add_array(w, "i8s", DSK_GGUF_INT8, i8, 2);
    uint16_t u16[] = {65535};
    dsk_gguf_add_array(w, "u16s", DSK_GGUF_UINT16, u16, 1);
    dsk_gguf_add_array(w, "empty", DSK_GGUF_UINT8, NULL, 0);
    uint64_t ne_a[] = {256, 3}, ne_b[] = {64, 2}, ne_c[] = {5};
    dsk_gguf_add_tensor(w, "q4k", DSK_GGUF_Q4_K, 2, ne_a);
    dsk_gguf_add_tensor(w, "q8", DSK_GGUF_Q8_0, 2, ne_b);
    dsk_gguf_add_tensor(w, "q4", DSK_GGUF_Q4_0, 2, ne_b);
    dsk_gguf_add_tensor(w, "h", DSK_GGUF_F16, 1, ne_c);
    dsk_gguf_add_tensor(w, "f", DSK_GGUF_F32, 1, ne_c);
    dsk_err err;
    CHECK(dsk_gguf_writer_begin(w, path, &err) == 0);
    static uint8_t q[4096];
    const struct { int type; size_t n; } ts[] = {{DSK_GGUF_Q4_K, 768}, {DSK_GGUF_Q8_0, 128}, {DSK_GGUF_Q4_0, 128},
                                               {DSK_GGUF_F16, 5}, {DSK_GGUF_F32, 5}};
    for (int i = 0; i < 5; i++) {
        uint64_t nb;
        dsk_ggml_nbytes(ts[i].type, ts[i].n, &nb);
        dsk_ggml_quantize(ts[i].type, src, q, ts[i].n);
        CHECK(dsk_gguf_writer_data(w, q, (size_t)nb, &err) == 0);
    }
    CHECK(dsk_gguf_writer_finish(w, &err) == 0);
    dsk_gguf_writer_free(w);
    dsk_buf_clear(out);
    CHECK(dsk_read_file(path, 1 << 20, out, &err) == 0);
}

TEST(write_read_round_trip)
{
    float src[768];
    dsk_buf b = {0};
    write_sample(tmp_path("sample.gguf"), &b, src, 768);
    dsk_gguf_file f;
    dsk_err err;
    int rc = dsk_gguf_read(b.data, b.len, &f, &err);
    CHECK(rc == 0);
    if (rc) {
        printf("# %s\n", err.msg);
        dsk_buf_free(&b);
        return;
    }
    CHECK(f.version == 3 && f.alignment == 32 && f.n_kv == 12 && f.n_tensors == 5);
    CHECK(f.data_offset % 32 == 0);
    dsk_gguf_str s;
    CHECK(dsk_gguf_get_str(&f, "general.architecture", &s) == 0 && dsk_gguf_str_is(s, "llama"));
    uint64_t u;
    double d;
    CHECK(dsk_gguf_get_u64(&f, "u32", &u) == 0 && u == 4000000000u);
    CHECK(dsk_gguf_get_u64(&f, "u64", &u) == 0 && u == 1ull << 40);
    CHECK(dsk_gguf_get_u64(&f, "i32", &u) == -1 && dsk_gguf_find_kv(&f, "i32")->i == -7);
    CHECK(dsk_gguf_get_f64(&f, "f32", &d) == 0 && d == 0.25);
    CHECK(dsk_gguf_find_kv(&f, "bool")->type == DSK_GGUF_BOOL && dsk_gguf_find_kv(&f, "bool")->u == 1);
    const dsk_gguf_kv *kv = dsk_gguf_find_kv(&f, "strs");
    CHECK(kv && kv->type == DSK_GGUF_ARRAY && kv->arr_type == DSK_GGUF_STRING && kv->arr_n == 3);
    if (kv && kv->arr_str) {
        CHECK(dsk_gguf_str_is(kv->arr_str[0], "a") && dsk_gguf_str_is(kv->arr_str[1], ""));
        CHECK(dsk_gguf_str_is(kv->arr_str[2], "Ġthe"));
    }
    kv = dsk_gguf_find_kv(&f, "ints");
    CHECK(kv && kv->arr_n == 3 && dsk_gguf_arr_int(kv, 1) == -2 && dsk_gguf_arr_int(kv, 2) == 3);
    kv = dsk_gguf_find_kv(&f, "f64s");
    CHECK(kv && dsk_gguf_arr_float(kv, 1) == -2.25);
    kv = dsk_gguf_find_kv(&f, "i8s");
    CHECK(kv && dsk_gguf_arr_int(kv, 0) == -128 && dsk_gguf_arr_int(kv, 1) == 127);
    kv = dsk_gguf_find_kv(&f, "u16s");
    CHECK(kv && dsk_gguf_arr_int(kv, 0) == 65535);
    kv = dsk_gguf_find_kv(&f, "empty");
    CHECK(kv && kv->arr_n == 0);
    CHECK(dsk_gguf_find_kv(&f, "nope") == NULL && dsk_gguf_find_tensor(&f, "nope") == NULL);

    const dsk_gguf_tensor *t = dsk_gguf_find_tensor(&f, "q4k");
    CHECK(t && t->n_dims == 2 && t->ne[0] == 256 && t->ne[1] == 3 && t->ne[2] == 1 && t->n_elems == 768);
    CHECK(t && t->nbytes == 3 * 144 && t->offset == 0);
    for (size_t i = 0; i < f.n_tensors; i++) {
        const dsk_gguf_tensor *ti = &f.tensors[i];
        CHECK(ti->offset % 32 == 0 && ti->data == (const uint8_t *)b.data + f.data_offset + ti->offset);
        float got[768], want[768];
        static uint8_t q[4096];
        CHECK(dsk_gguf_dequantize(ti, got, &err) == 0);
        dsk_ggml_quantize(ti->type, src, q, ti->n_elems);
        dsk_ggml_dequantize(ti->type, q, want, ti->n_elems);
        CHECK(memcmp(got, want, ti->n_elems * sizeof *got) == 0);
    }
    t = dsk_gguf_find_tensor(&f, "f");
    CHECK(t && t->type == DSK_GGUF_F32 && memcmp(t->data, src, 5 * sizeof *src) == 0);
    /* the file ends on the padded last tensor */
    CHECK(b.len % 32 == 0 && b.len == f.data_offset + t->offset + 32);
    dsk_gguf_free(&f);
    dsk_buf_free(&b);
}

TEST(writer_refuses_bad_declarations)
{
    dsk_err err;
    dsk_gguf_writer *w = dsk_gguf_writer_new();
    dsk_gguf_add_u32(w, "k", 1);
    dsk_gguf_add_u32(w, "k", 2);
    CHECK(dsk_gguf_writer_begin(w, tmp_path("dup.gguf"), &err) == EX_SOFTWARE && strstr(err.msg, "twice"));
    dsk_gguf_writer_free(w);
    uint64_t ne[] = {48, 2};
    w = dsk_gguf_writer_new();
    dsk_gguf_add_tensor(w, "t", DSK_GGUF_Q4_0, 2, ne);   /* 48 is not whole blocks */
    CHECK(dsk_gguf_writer_begin(w, tmp_path("bad.gguf"), &err) == EX_SOFTWARE);
    dsk_gguf_writer_free(w);
    ne[0] = 32;
    w = dsk_gguf_writer_new();
    dsk_gguf_add_tensor(w, "t", DSK_GGUF_Q4_0, 2, ne);
    CHECK(dsk_gguf_writer_begin(w, tmp_path("short.gguf"), &err) == 0);
    uint8_t q[36] = {0};
    CHECK(dsk_gguf_writer_data(w, q, 35, &err) == EX_SOFTWARE);
    CHECK(dsk_gguf_writer_finish(w, &err) == EX_SOFTWARE);
    dsk_gguf_writer_free(w);   /* unfinished: nothing left behind */
    struct stat sb;
    CHECK(stat(tmp_path("short.gguf"), &sb) != 0);
}

/* Patches: offsets found by parsing the sample's own layout. */
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int reads(const dsk_buf *b, const char *want_in_msg)
{
    dsk_gguf_file f;
    dsk_err err;
    int rc = dsk_gguf_read(b->data, b->len, &f, &err);
    if (rc == 0) {
        dsk_gguf_free(&f);
        return 0;
    }
    if (rc != EX_DATAERR || strncmp(err.msg, "gguf: ", 6) != 0 || (want_in_msg && !strstr(err.msg, want_in_msg))) {
        printf("#   unexpected: %d %s\n", rc, err.msg);
        return -2;
    }
    return -1;
}

/* Offset of the first occurrence of a byte string, or -1. */
static long find(const dsk_buf *b, const void *s, size_t n)
{
    for (size_t i = 0; i + n <= b->len; i++)
        if (memcmp(b->data + i, s, n) == 0)
            return (long)i;
    return -1;
}

TEST(corrupt_input_rejected)
{
    float src[768];
    dsk_buf good = {0}, b = {0};
    write_sample(tmp_path("sample2.gguf"), &good, src, 768);
    dsk_gguf_file f;
    dsk_err err;
    CHECK(dsk_gguf_read(good.data, good.len, &f, &err) == 0);
    uint64_t data_end = f.data_offset + f.tensors[4].offset + f.tensors[4].nbytes;
    dsk_gguf_free(&f);

    /* every truncation that cuts into metadata or data */
    int bad = 0;
    for (size_t n = 0; n < data_end; n++) {
        dsk_buf_clear(&b);
        dsk_buf_add(&b, good.data, n);
        bad += reads(&b, NULL) != -1;
    }
    CHECK(bad == 0);

#define MUTATE(at, code)                                                                                     \
    do {                                                                                                     \
        dsk_buf_clear(&b);                                                                                   \
        dsk_buf_add(&b, good.data, good.len);                                                                \
        uint8_t *p = (uint8_t *)b.data + (at);                                                               \
        (void)p;                                                                                             \
        code;                                                                                                \
    } while (0)

    MUTATE(0, p[0] = 'X');
    CHECK(reads(&b, "magic") == -1);
    MUTATE(4, p[0] = 1);
    CHECK(reads(&b, "version") == -1);
    MUTATE(8, put64(p, 1ull << 60));        /* tensor count */
    CHECK(reads(&b, "more keys") == -1);
    MUTATE(16, put64(p, UINT64_MAX));       /* kv count */
    CHECK(reads(&b, "more keys") == -1);
    MUTATE(24, put64(p, 1ull << 62));       /* first key's length */
    CHECK(reads(&b, "string longer") == -1);
    MUTATE(24, put64(p, 0));                /* empty key */
    CHECK(reads(&b, NULL) == -1);
    long k = find(&good, "u32", 3);          /* key "u32", then its type */
    MUTATE(k + 3, p[0] = 13);
    CHECK(reads(&b, "unknown value type") == -1);
    k = find(&good, "bool", 4);
    MUTATE(k + 4 + 4, p[0] = 2);
    CHECK(reads(&b, "bool") == -1);
    k = find(&good, "ints", 4);
    MUTATE(k + 4 + 4, p[0] = DSK_GGUF_ARRAY);   /* array of arrays */
    CHECK(reads(&b, "array") == -1);
    MUTATE(k + 4 + 8, put64(p, 1ull << 61));    /* array length */
    CHECK(reads(&b, "array longer") == -1);
    k = find(&good, "strs", 4);
    MUTATE(k + 4 + 8, put64(p, 1ull << 61));
    CHECK(reads(&b, "array longer") == -1);
    k = find(&good, "i32", 3);
    MUTATE(k, memcpy(p, "u32", 3));             /* duplicate key */
    CHECK(reads(&b, "appears twice") == -1);
    k = find(&good, "\x02\0\0\0\0\0\0\0q8", 10);  /* tensor "q8" */
    CHECK(k > 0);
    MUTATE(k + 9, p[0] = '4');                   /* tensor names "q4" twice */
    CHECK(reads(&b, "appears twice") == -1);
    MUTATE(k + 9, p[0] = 0);                     /* NUL in a name */
    CHECK(reads(&b, "NUL") == -1);
    long dims = k + 10;                          /* u32 n_dims, ne[0], ne[1], type, offset */
    MUTATE(dims, p[0] = 5);
    CHECK(reads(&b, "dimension count") == -1);
    MUTATE(dims + 4, put64(p, 0));
    CHECK(reads(&b, "dimension zero") == -1);
    MUTATE(dims + 4, put64(p, 1ull << 62); put64(p + 8, 1ull << 62));
    CHECK(reads(&b, "too large") == -1);
    MUTATE(dims + 4, put64(p, 48));
    CHECK(reads(&b, "whole number of blocks") == -1);
    MUTATE(dims + 20, p[0] = 3);                 /* q4_1: not a type dsk reads */
    CHECK(reads(&b, "tensor type") == -1);
    MUTATE(dims + 24, p[0] += 1);                /* offset not aligned */
    CHECK(reads(&b, "unaligned") == -1);
    MUTATE(dims + 24, put64(p, 0));              /* overlaps q4k at 0 */
    CHECK(reads(&b, "overlapping") == -1);
    MUTATE(dims + 24, put64(p, 1ull << 40));
    CHECK(reads(&b, "past") == -1);
    MUTATE(find(&good, "u32", 3), memcpy(p, "gen", 3));   /* not general.alignment: still fine */
    CHECK(reads(&b, NULL) == 0);
    dsk_buf_free(&b);
    dsk_buf_free(&good);
}

TEST(alignment_key_checked)
{
    dsk_err err;
    dsk_buf b = {0};
    for (int pass = 0; pass < 3; pass++) {
        dsk_gguf_writer *w = dsk_gguf_writer_new();
        if (pass == 0)
            dsk_gguf_add_u32(w, "general.alignment", 3);
        else if (pass == 1)
            dsk_gguf_add_u64(w, "general.alignment", 32);
        else
            dsk_gguf_add_u32(w, "general.alignment", 16);
        CHECK(dsk_gguf_writer_begin(w, tmp_path("al.gguf"), &err) == 0);
        CHECK(dsk_gguf_writer_finish(w, &err) == 0);
        dsk_gguf_writer_free(w);
        dsk_buf_clear(&b);
        CHECK(dsk_read_file(tmp_path("al.gguf"), 1 << 20, &b, &err) == 0);
        CHECK(reads(&b, pass < 2 ? "alignment" : NULL) == (pass < 2 ? -1 : 0));
    }
    dsk_buf_free(&b);
}

TEST(random_corruption_never_crashes)
{
    float src[768];
    dsk_buf good = {0}, b = {0};
    write_sample(tmp_path("sample3.gguf"), &good, src, 768);
    int unexpected = 0;
    static float out[1 << 16];
    for (int iter = 0; iter < 3000; iter++) {
        dsk_buf_clear(&b);
        dsk_buf_add(&b, good.data, good.len);
        for (int k = 0; k < 1 + iter % 4; k++)
            b.data[(size_t)(frand() * (float)b.len) % b.len] ^= (char)(1 + (int)(frand() * 255));
        dsk_gguf_file f;
        dsk_err err;
        int rc = dsk_gguf_read(b.data, b.len, &f, &err);
        if (rc == 0) {
            for (size_t i = 0; i < f.n_tensors; i++)
                if (f.tensors[i].n_elems <= sizeof out / sizeof out[0])
                    unexpected += dsk_gguf_dequantize(&f.tensors[i], out, &err) != 0;
            dsk_gguf_free(&f);
        } else
            unexpected += rc != EX_DATAERR;
    }
    CHECK(unexpected == 0);
    dsk_buf_free(&b);
    dsk_buf_free(&good);
}

/* ---- export -------------------------------------------------------------------------------------- */

static int weight_dtype = DSK_ST_F32;   /* or DSK_ST_BF16 */

/* A random matrix [rows][cols], or a norm [rows] near 1 when cols is 0. */
static void add_weight(dsk_st_writer *w, float **keep, const char *name, int rows, int cols)
{
    int64_t shape[2] = {rows, cols};
    size_t n = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    float *v = *keep = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = cols > 0 ? gauss() * 0.05f : 1 + 0.1f * gauss();
    if (weight_dtype == DSK_ST_BF16) {   /* the top halves, in place */
        uint16_t *h = (uint16_t *)v;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &v[i], sizeof bits);
            h[i] = (uint16_t)(bits >> 16);
        }
    }
    dsk_st_writer_add(w, name, weight_dtype, cols > 0 ? 2 : 1, shape, v);
}

/* A checkpoint directory of config c: a tokenizer with the 256 bytes, a
 * few merges and <|endoftext|>, and random weights under HF Llama names. */
static void make_checkpoint(const char *dir, const dsk_model_config *c, const char *pattern_name)
{
    mkdir(dir, 0755);
    dsk_err err;
    dsk_buf b = {0};
    dsk_config_write(c, &b);
    char *p = dsk_path_join(dir, "config.json");
    CHECK(dsk_write_file(p, &b, &err) == 0);
    free(p);
    dsk_buf_free(&b);

    dsk_tokenizer t;
    dsk_tokenizer_init(&t);
    for (int i = 0; i < 256; i++) {
        uint8_t byte = (uint8_t)i;
        CHECK(dsk_tokenizer_add(&t, (uint32_t)i, &byte, 1, &err) == 0);
    }
    static const char *merges[] = {"th", "he", "the", " t", " the", "in"};
    for (int i = 0; i < 6; i++)
        CHECK(dsk_tokenizer_add(&t, 256u + (uint32_t)i, merges[i], strlen(merges[i]), &err) == 0);
    CHECK(dsk_tokenizer_add_special(&t, 262, "<|endoftext|>", &err) == 0);
    CHECK(dsk_tokenizer_set_pattern(&t, dsk_bpe_named_pattern(pattern_name), &err) == 0);
    CHECK(dsk_tokenizer_finish(&t, &err) == 0);
    p = dsk_path_join(dir, "tokenizer.json");
    FILE *f = fopen(p, "w");
    CHECK(f && dsk_bpe_write_json(&t, f, &err) == 0);
    fclose(f);
    free(p);
    dsk_tokenizer_free(&t);

    int d = c->d_model, hd = d / c->n_heads, V = c->vocab_size;
    dsk_st_writer *w = dsk_st_writer_new();
    float *bufs[256];
    int nb = 0;
    char name[96];
    add_weight(w, &bufs[nb++], "model.embed_tokens.weight", V, d);
    for (int l = 0; l < c->n_layers; l++) {
        static const char *const suffix[] = {"input_layernorm.weight", "self_attn.q_proj.weight",
                                             "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                                             "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                                             "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};
        int rows[] = {d, c->n_heads * hd, c->n_kv_heads * hd, c->n_kv_heads * hd, d, d, c->d_ff, c->d_ff, d};
        int cols[] = {0, d, d, d, c->n_heads * hd, 0, d, d, c->d_ff};
        int moe = dsk_config_layer_is_moe(c, l);
        for (int i = 0; i < (moe ? 6 : 9); i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix[i]);
            add_weight(w, &bufs[nb++], name, rows[i], cols[i]);
        }
        if (!moe)
            continue;
        /* dsk's (DeepSeek's) names for a mixture of experts */
        int E = c->n_routed_experts, Fe = c->d_ff_expert, Fs = c->n_shared_experts * Fe;
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate.weight", l);
        add_weight(w, &bufs[nb++], name, E, d);
        if (c->balance == DSK_BALANCE_BIAS) {
            snprintf(name, sizeof name, "model.layers.%d.mlp.gate.e_score_correction_bias", l);
            add_weight(w, &bufs[nb++], name, E, 0);
        }
        static const char *const proj[] = {"gate_proj", "up_proj", "down_proj"};
        for (int j = 0; j < 3; j++)
            for (int e = 0; e < E; e++) {
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.%s.weight", l, e, proj[j]);
                add_weight(w, &bufs[nb++], name, j == 2 ? d : Fe, j == 2 ? Fe : d);
            }
        for (int j = 0; j < 3 && Fs; j++) {
            snprintf(name, sizeof name, "model.layers.%d.mlp.shared_experts.%s.weight", l, proj[j]);
            add_weight(w, &bufs[nb++], name, j == 2 ? d : Fs, j == 2 ? Fs : d);
        }
    }
    add_weight(w, &bufs[nb++], "model.norm.weight", d, 0);
    if (!c->tie_embeddings)
        add_weight(w, &bufs[nb++], "lm_head.weight", V, d);
    p = dsk_path_join(dir, "model.safetensors");
    CHECK(dsk_st_writer_write(w, p, &err) == 0);
    free(p);
    dsk_st_writer_free(w);
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
}

static void small_config(dsk_model_config *c)
{
    dsk_err err;
    CHECK(dsk_config_preset(c, "nano") == 0);
    const char *sets[] = {"vocab_size=300", "d_model=256", "n_heads=4", "n_kv_heads=2", "d_ff=288",
                          "n_layers=2", "pattern=G", "tie=0", "eos=262"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        CHECK(dsk_config_set(c, sets[i], &err) == 0);
    CHECK(dsk_config_validate(c, &err) == 0);
}

/* small_config as a DeepSeek-MoE: layer 0 dense, layer 1 four experts
 * of 64 (top 2) and one shared. */
static void moe_config(dsk_model_config *c)
{
    dsk_err err;
    small_config(c);
    const char *sets[] = {"experts=4", "d_ff_expert=64", "shared_experts=1", "top_k=2", "first_dense_layers=1"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        CHECK(dsk_config_set(c, sets[i], &err) == 0);
    CHECK(dsk_config_validate(c, &err) == 0);
}

static int export_and_read(const char *dir, int type, dsk_buf *b, dsk_gguf_file *f, dsk_err *err)
{
    const char *out = tmp_path("out.gguf");
    int rc = dsk_gguf_export(dir, out, type, err);
    if (rc)
        return rc;
    dsk_buf_clear(b);
    rc = dsk_read_file(out, 64 << 20, b, err);
    return rc ? rc : dsk_gguf_read(b->data, b->len, f, err);
}

/* The checkpoint's own tensors, to compare the export's with. */
static void open_tensors(const char *dir, dsk_safetensors *st)
{
    dsk_err err;
    char *p = dsk_path_join(dir, "model.safetensors");
    CHECK(dsk_st_open(st, p, &err) == 0);
    free(p);
}

/* Exports dir as type and reads the file back; on failure says why, frees b and returns 0. */
static int exported(const char *dir, int type, dsk_buf *b, dsk_gguf_file *f)
{
    dsk_err err;
    int rc = export_and_read(dir, type, b, f, &err);
    CHECK(rc == 0);
    if (rc) {
        printf("# %s\n", err.msg);
        dsk_buf_free(b);
    }
    return rc == 0;
}

TEST(export_synthetic_checkpoint)
{
    dsk_model_config c;
    small_config(&c);
    const char *dir = tmp_path("ckpt");
    char dirbuf[160];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    make_checkpoint(dirbuf, &c, "cl100k");
    dsk_safetensors st;
    open_tensors(dirbuf, &st);
    static const int types[] = {DSK_GGUF_F32, DSK_GGUF_F16, DSK_GGUF_Q8_0, DSK_GGUF_Q4_0, DSK_GGUF_Q4_K};
    for (size_t ti = 0; ti < 5; ti++) {
        dsk_buf b = {0};
        dsk_gguf_file f;
        if (!exported(dirbuf, types[ti], &b, &f))
            continue;
        dsk_gguf_str s;
        uint64_t u;
        double v;
        CHECK(dsk_gguf_get_str(&f, "general.architecture", &s) == 0 && dsk_gguf_str_is(s, "llama"));
        CHECK(dsk_gguf_get_str(&f, "tokenizer.ggml.model", &s) == 0 && dsk_gguf_str_is(s, "gpt2"));
        CHECK(dsk_gguf_get_str(&f, "tokenizer.ggml.pre", &s) == 0 && dsk_gguf_str_is(s, "llama-bpe"));
        CHECK(dsk_gguf_get_u64(&f, "llama.embedding_length", &u) == 0 && u == 256);
        CHECK(dsk_gguf_get_u64(&f, "llama.block_count", &u) == 0 && u == 2);
        CHECK(dsk_gguf_get_u64(&f, "llama.feed_forward_length", &u) == 0 && u == 288);
        CHECK(dsk_gguf_get_u64(&f, "llama.attention.head_count", &u) == 0 && u == 4);
        CHECK(dsk_gguf_get_u64(&f, "llama.attention.head_count_kv", &u) == 0 && u == 2);
        CHECK(dsk_gguf_get_u64(&f, "llama.rope.dimension_count", &u) == 0 && u == 64);
        CHECK(dsk_gguf_get_u64(&f, "llama.context_length", &u) == 0 && u == (uint64_t)c.max_seq_len);
        CHECK(dsk_gguf_get_u64(&f, "llama.vocab_size", &u) == 0 && u == 300);
        CHECK(dsk_gguf_get_f64(&f, "llama.rope.freq_base", &v) == 0 && v == 10000);
        CHECK(dsk_gguf_get_f64(&f, "llama.attention.layer_norm_rms_epsilon", &v) == 0 && fabs(v - 1e-5) < 1e-9);
        CHECK(dsk_gguf_get_u64(&f, "tokenizer.ggml.eos_token_id", &u) == 0 && u == 262);
        CHECK(dsk_gguf_get_u64(&f, "general.file_type", &u) == 0 &&
              u == (uint64_t)(types[ti] == DSK_GGUF_F32 ? 0 : types[ti] == DSK_GGUF_F16 ? 1 :
                              types[ti] == DSK_GGUF_Q8_0 ? 7 : types[ti] == DSK_GGUF_Q4_0 ? 2 : 14));
        const dsk_gguf_kv *add_bos = dsk_gguf_find_kv(&f, "tokenizer.ggml.add_bos_token");
        CHECK(add_bos && add_bos->type == DSK_GGUF_BOOL && add_bos->u == 0);
        const dsk_gguf_kv *tok = dsk_gguf_find_kv(&f, "tokenizer.ggml.tokens"),
                          *tt = dsk_gguf_find_kv(&f, "tokenizer.ggml.token_type"),
                          *mg = dsk_gguf_find_kv(&f, "tokenizer.ggml.merges");
        CHECK(tok && tok->arr_n == 300 && tt && tt->arr_n == 300 && mg && mg->arr_n == 6);
        if (tok && tt && mg && tok->arr_n == 300 && tt->arr_n == 300 && mg->arr_n == 6) {
            CHECK(dsk_gguf_str_is(tok->arr_str[' '], "Ġ") && dsk_gguf_str_is(tok->arr_str[259], "Ġt"));
            CHECK(dsk_gguf_str_is(tok->arr_str[262], "<|endoftext|>") && dsk_gguf_arr_int(tt, 262) == 3);
            CHECK(dsk_gguf_str_is(tok->arr_str[299], "[PAD299]") && dsk_gguf_arr_int(tt, 299) == 5);
            CHECK(dsk_gguf_arr_int(tt, 'a') == 1);
            /* merges in id order; "the" is th+e since "th" (256) was merged before "he" (257) */
            CHECK(dsk_gguf_str_is(mg->arr_str[0], "t h") && dsk_gguf_str_is(mg->arr_str[2], "th e"));
            CHECK(dsk_gguf_str_is(mg->arr_str[3], "Ġ t") && dsk_gguf_str_is(mg->arr_str[4], "Ġ the"));
        }
        /* 2 layers of 9 + embeddings, final norm, output */
        CHECK(f.n_tensors == 21);
        const dsk_gguf_tensor *q = dsk_gguf_find_tensor(&f, "blk.1.attn_q.weight"),
                              *k = dsk_gguf_find_tensor(&f, "blk.0.attn_k.weight"),
                              *dn = dsk_gguf_find_tensor(&f, "blk.0.ffn_down.weight"),
                              *nrm = dsk_gguf_find_tensor(&f, "blk.0.attn_norm.weight"),
                              *out = dsk_gguf_find_tensor(&f, "output.weight"),
                              *emb = dsk_gguf_find_tensor(&f, "token_embd.weight");
        CHECK(q && k && dn && nrm && out && emb && dsk_gguf_find_tensor(&f, "output_norm.weight"));
        if (!(q && k && dn && nrm && out && emb)) {
            dsk_gguf_free(&f);
            dsk_buf_free(&b);
            continue;
        }
        CHECK(q->ne[0] == 256 && q->ne[1] == 256 && k->ne[0] == 256 && k->ne[1] == 128);
        CHECK(dn->ne[0] == 288 && dn->ne[1] == 256 && emb->ne[0] == 256 && emb->ne[1] == 300);
        CHECK(nrm->type == DSK_GGUF_F32 && nrm->n_dims == 1);
        CHECK(q->type == types[ti]);
        /* ffn_down's rows of 288 are no whole q4_K block: q8_0; of q4_0/q8_0 blocks they are */
        CHECK(dn->type == (types[ti] == DSK_GGUF_Q4_K ? DSK_GGUF_Q8_0 : types[ti]));
        if (types[ti] == DSK_GGUF_F32) {
            /* exact: q and k are the checkpoint's rows, permuted per head */
            const dsk_st_tensor *sq = dsk_st_find(&st, "model.layers.1.self_attn.q_proj.weight"),
                                *sk = dsk_st_find(&st, "model.layers.0.self_attn.k_proj.weight"),
                                *sn = dsk_st_find(&st, "model.layers.0.input_layernorm.weight");
            float *perm = malloc(256 * 256 * sizeof *perm), *src = malloc(256 * 256 * sizeof *src);
            memcpy(src, sq->data, 256 * 256 * sizeof *src);
            dsk_gguf_permute_rope(perm, src, 4, 64, 256);
            CHECK(memcmp(q->data, perm, q->nbytes) == 0);
            CHECK(memcmp(q->data, src, q->nbytes) != 0);
            memcpy(src, sk->data, 128 * 256 * sizeof *src);
            dsk_gguf_permute_rope(perm, src, 2, 64, 256);   /* k: the kv heads */
            CHECK(memcmp(k->data, perm, k->nbytes) == 0);
            CHECK(memcmp(nrm->data, sn->data, 256 * sizeof(float)) == 0);
            CHECK(memcmp(dn->data, dsk_st_find(&st, "model.layers.0.mlp.down_proj.weight")->data, dn->nbytes) == 0);
            free(perm);
            free(src);
        }
        dsk_gguf_free(&f);
        dsk_buf_free(&b);
    }
    dsk_st_close(&st);
}

TEST(export_mixture_of_experts)
{
    dsk_model_config c;
    moe_config(&c);
    c.tie_embeddings = 1;
    char dir[160];
    snprintf(dir, sizeof dir, "%s", tmp_path("ckpt-moe"));
    make_checkpoint(dir, &c, "cl100k");
    dsk_safetensors st;
    open_tensors(dir, &st);
    static const int types[] = {DSK_GGUF_F32, DSK_GGUF_Q4_K};
    for (size_t ti = 0; ti < 2; ti++) {
        dsk_buf b = {0};
        dsk_gguf_file f;
        if (!exported(dir, types[ti], &b, &f))
            continue;
        dsk_gguf_str s;
        uint64_t u;
        double v;
        CHECK(dsk_gguf_get_str(&f, "general.architecture", &s) == 0 && dsk_gguf_str_is(s, "deepseek"));
        CHECK(dsk_gguf_get_u64(&f, "deepseek.embedding_length", &u) == 0 && u == 256);
        CHECK(dsk_gguf_get_u64(&f, "deepseek.feed_forward_length", &u) == 0 && u == 288);
        CHECK(dsk_gguf_get_u64(&f, "deepseek.leading_dense_block_count", &u) == 0 && u == 1);
        CHECK(dsk_gguf_get_u64(&f, "deepseek.expert_feed_forward_length", &u) == 0 && u == 64);
        CHECK(dsk_gguf_get_u64(&f, "deepseek.expert_count", &u) == 0 && u == 4);
        CHECK(dsk_gguf_get_u64(&f, "deepseek.expert_used_count", &u) == 0 && u == 2);
        CHECK(dsk_gguf_get_u64(&f, "deepseek.expert_shared_count", &u) == 0 && u == 1);
        CHECK(dsk_gguf_get_f64(&f, "deepseek.expert_weights_scale", &v) == 0 && v == 1);
        CHECK(dsk_gguf_find_kv(&f, "llama.embedding_length") == NULL);
        /* embeddings, final norm, output (the tied embedding again); layer 0: 9; layer 1: 6 of attention
         * and norms, the router, 3 stacked experts, 3 shared */
        CHECK(f.n_tensors == 3 + 9 + 6 + 1 + 3 + 3);
        const dsk_gguf_tensor *inp = dsk_gguf_find_tensor(&f, "blk.1.ffn_gate_inp.weight"),
                              *ge = dsk_gguf_find_tensor(&f, "blk.1.ffn_gate_exps.weight"),
                              *de = dsk_gguf_find_tensor(&f, "blk.1.ffn_down_exps.weight"),
                              *ue = dsk_gguf_find_tensor(&f, "blk.1.ffn_up_exps.weight"),
                              *ds = dsk_gguf_find_tensor(&f, "blk.1.ffn_down_shexp.weight"),
                              *gs = dsk_gguf_find_tensor(&f, "blk.1.ffn_gate_shexp.weight"),
                              *out = dsk_gguf_find_tensor(&f, "output.weight"),
                              *emb = dsk_gguf_find_tensor(&f, "token_embd.weight");
        CHECK(inp && ge && de && ue && ds && gs && out && emb && dsk_gguf_find_tensor(&f, "blk.0.ffn_gate.weight") &&
              !dsk_gguf_find_tensor(&f, "blk.1.ffn_gate.weight") && !dsk_gguf_find_tensor(&f, "blk.0.ffn_gate_inp.weight"));
        if (!(inp && ge && de && ue && ds && gs && out && emb)) {
            dsk_gguf_free(&f);
            dsk_buf_free(&b);
            continue;
        }
        CHECK(inp->n_dims == 2 && inp->ne[0] == 256 && inp->ne[1] == 4 && inp->type == DSK_GGUF_F32);
        CHECK(ge->n_dims == 3 && ge->ne[0] == 256 && ge->ne[1] == 64 && ge->ne[2] == 4);
        CHECK(de->n_dims == 3 && de->ne[0] == 64 && de->ne[1] == 256 && de->ne[2] == 4);
        CHECK(gs->ne[0] == 256 && gs->ne[1] == 64 && ds->ne[0] == 64 && ds->ne[1] == 256);
        /* rows of 256 take q4_K; the experts' down rows of 64 fall back to q8_0 */
        CHECK(ge->type == types[ti] && ue->type == types[ti]);
        CHECK(de->type == (types[ti] == DSK_GGUF_Q4_K ? DSK_GGUF_Q8_0 : types[ti]));
        CHECK(out->type == emb->type && out->nbytes == emb->nbytes && memcmp(out->data, emb->data, out->nbytes) == 0);
        if (types[ti] == DSK_GGUF_F32) {
            /* the experts stacked in order, each as the checkpoint has it */
            size_t per = 64 * 256 * sizeof(float);
            int same = 1;
            for (int e = 0; e < 4; e++) {
                char name[96];
                snprintf(name, sizeof name, "model.layers.1.mlp.experts.%d.gate_proj.weight", e);
                same &= memcmp(ge->data + e * per, dsk_st_find(&st, name)->data, per) == 0;
                snprintf(name, sizeof name, "model.layers.1.mlp.experts.%d.down_proj.weight", e);
                same &= memcmp(de->data + e * per, dsk_st_find(&st, name)->data, per) == 0;
            }
            CHECK(same);
            CHECK(memcmp(inp->data, dsk_st_find(&st, "model.layers.1.mlp.gate.weight")->data, inp->nbytes) == 0);
            CHECK(memcmp(ds->data, dsk_st_find(&st, "model.layers.1.mlp.shared_experts.down_proj.weight")->data,
                         ds->nbytes) == 0);
        }
        dsk_gguf_free(&f);
        dsk_buf_free(&b);
    }
    dsk_st_close(&st);
}

TEST(export_tied_and_gpt2_pattern)
{
    dsk_model_config c;
    small_config(&c);
    c.tie_embeddings = 1;
    char dir[160];
    snprintf(dir, sizeof dir, "%s", tmp_path("ckpt-tied"));
    make_checkpoint(dir, &c, "gpt2");
    dsk_buf b = {0};
    dsk_gguf_file f;
    dsk_err err;
    CHECK(export_and_read(dir, DSK_GGUF_Q4_K, &b, &f, &err) == 0);
    CHECK(f.n_tensors == 20 && dsk_gguf_find_tensor(&f, "output.weight") == NULL);
    dsk_gguf_str s;
    CHECK(dsk_gguf_get_str(&f, "tokenizer.ggml.pre", &s) == 0 && dsk_gguf_str_is(s, "gpt-2"));
    uint64_t u;
    CHECK(dsk_gguf_get_u64(&f, "tokenizer.ggml.bos_token_id", &u) == 0 && u == 262);   /* none: the eos */
    dsk_gguf_free(&f);
    dsk_buf_free(&b);
}

TEST(export_bf16_weights)
{
    dsk_model_config c;
    small_config(&c);
    char dir[160];
    snprintf(dir, sizeof dir, "%s", tmp_path("ckpt-bf16"));
    weight_dtype = DSK_ST_BF16;
    make_checkpoint(dir, &c, "cl100k");
    weight_dtype = DSK_ST_F32;
    dsk_buf b = {0};
    dsk_gguf_file f;
    dsk_err err;
    dsk_safetensors st;
    char *p = dsk_path_join(dir, "model.safetensors");
    CHECK(dsk_st_open(&st, p, &err) == 0);
    free(p);
    CHECK(export_and_read(dir, DSK_GGUF_F32, &b, &f, &err) == 0);
    const dsk_gguf_tensor *t = dsk_gguf_find_tensor(&f, "blk.1.ffn_up.weight");
    const dsk_st_tensor *s = dsk_st_find(&st, "model.layers.1.mlp.up_proj.weight");
    CHECK(t && s && t->type == DSK_GGUF_F32 && t->n_elems == s->n_elems);
    int bad = 0;
    for (uint64_t i = 0; t && s && i < s->n_elems; i++) {
        const uint8_t *h = (const uint8_t *)s->data + 2 * i;
        uint32_t bits = (uint32_t)(h[0] | h[1] << 8) << 16;
        bad += memcmp(t->data + 4 * i, &bits, 4) != 0;
    }
    CHECK(bad == 0);
    dsk_st_close(&st);
    dsk_gguf_free(&f);
    dsk_buf_free(&b);
}

TEST(export_refusals)
{
    dsk_model_config c;
    dsk_err err;
    struct stat sb;
    char out[160];
    snprintf(out, sizeof out, "%s", tmp_path("refused.gguf"));

    small_config(&c);
    CHECK(dsk_config_set(&c, "pattern=LHG", &err) == 0);
    char dir[160];
    snprintf(dir, sizeof dir, "%s", tmp_path("ckpt-local"));
    make_checkpoint(dir, &c, "cl100k");
    CHECK(dsk_gguf_export(dir, out, DSK_GGUF_F16, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "dsk_attention_pattern \"LHG\"") && strstr(err.msg, "local"));
    CHECK(stat(out, &sb) != 0);

    /* mixtures of experts llama.cpp's deepseek architecture computes otherwise */
    static const struct {
        const char *set, *why;
    } moe_refused[] = {{"shared_experts=0", "shared experts"},
                       {"router=sigmoid", "sigmoid router"},
                       {"balance=bias", "balancing bias"}};
    for (size_t i = 0; i < sizeof moe_refused / sizeof moe_refused[0]; i++) {
        moe_config(&c);
        CHECK(dsk_config_set(&c, moe_refused[i].set, &err) == 0);
        snprintf(dir, sizeof dir, "%s-%zu", tmp_path("ckpt-moe-refused"), i);
        make_checkpoint(dir, &c, "cl100k");
        CHECK(dsk_gguf_export(dir, out, DSK_GGUF_F16, &err) == EX_DATAERR);
        CHECK(strstr(err.msg, moe_refused[i].why) != NULL);
        if (!strstr(err.msg, moe_refused[i].why))
            printf("# %s: %s\n", moe_refused[i].set, err.msg);
    }

    /* more experts than llama.cpp loads (the check comes before the weights: config.json alone) */
    moe_config(&c);
    c.n_routed_experts = 513;
    snprintf(dir, sizeof dir, "%s", tmp_path("ckpt-513"));
    mkdir(dir, 0755);
    dsk_buf cfg513 = {0};
    dsk_config_write(&c, &cfg513);
    char *cp = dsk_path_join(dir, "config.json");
    CHECK(dsk_write_file(cp, &cfg513, &err) == 0);
    free(cp);
    dsk_buf_free(&cfg513);
    CHECK(dsk_gguf_export(dir, out, DSK_GGUF_F16, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "at most 512") != NULL);

    /* a tokenizer regex llama.cpp does not have */
    small_config(&c);
    snprintf(dir, sizeof dir, "%s", tmp_path("ckpt-regex"));
    make_checkpoint(dir, &c, "cl100k");
    dsk_buf tj = {0};
    char *p = dsk_path_join(dir, "tokenizer.json");
    CHECK(dsk_read_file(p, 1 << 20, &tj, &err) == 0);
    char *at = strstr(tj.data, "(?i:'s");   /* cl100k's start: make it a different regex */
    CHECK(at != NULL);
    if (at) {
        memcpy(at, "(?i:'S", 6);
        CHECK(dsk_write_file(p, &tj, &err) == 0);
        CHECK(dsk_gguf_export(dir, out, DSK_GGUF_F16, &err) == EX_DATAERR);
        CHECK(strstr(err.msg, "pre-tokenizer") != NULL);
    }
    free(p);
    dsk_buf_free(&tj);

    /* a weight with a shape config.json does not give */
    small_config(&c);
    snprintf(dir, sizeof dir, "%s", tmp_path("ckpt-shape"));
    make_checkpoint(dir, &c, "cl100k");
    CHECK(dsk_config_set(&c, "d_ff=320", &err) == 0);
    dsk_buf cj = {0};
    dsk_config_write(&c, &cj);
    p = dsk_path_join(dir, "config.json");
    CHECK(dsk_write_file(p, &cj, &err) == 0);
    free(p);
    dsk_buf_free(&cj);
    CHECK(dsk_gguf_export(dir, out, DSK_GGUF_F16, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "gate_proj") != NULL);

    CHECK(dsk_gguf_export(dir, out, 3, &err) == EX_USAGE);
    CHECK(dsk_gguf_export(tmp_path("no-such"), out, DSK_GGUF_F16, &err) != 0);
    CHECK(stat(out, &sb) != 0);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

TEST(cleanup)
{
    if (tmpdir[0])
        CHECK(nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

RUN_TESTS(T(fp16_conversions), T(block_sizes_and_names), T(q8_0_error_within_half_a_step),
          T(q4_0_layout_and_error_bound), T(q4_K_exact_values_and_layout), T(q4_K_error_bound),
          T(f16_and_f32_round_trip), T(rope_permutation_known_matrix), T(rope_permutation_preserves_attention_scores),
          T(weight_type_fallback), T(pre_tokenizer_names), T(write_read_round_trip), T(writer_refuses_bad_declarations),
          T(corrupt_input_rejected), T(alignment_key_checked), T(random_corruption_never_crashes),
          T(export_synthetic_checkpoint), T(export_mixture_of_experts), T(export_tied_and_gpt2_pattern), T(export_bf16_weights),
          T(export_refusals), T(cleanup))
