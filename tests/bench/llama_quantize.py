#!/usr/bin/env python3
"""llama.cpp's own quantizer (through llama-cpp-python) on a GGUF file:
    llama_quantize.py IN.gguf OUT.gguf FTYPE [--f32-embedding]
FTYPE is llama.cpp's file type number (15 = Q4_K_M, 7 = Q8_0).
--f32-embedding keeps the token embedding and the output layer in f32
(llama-quantize's --token-embedding-type f32 --output-tensor-type f32), as
dsk-quant keeps them: then both quantize the same tensors."""
import ctypes
import sys

import llama_cpp

src, dst, ftype = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = ftype
if "--f32-embedding" in sys.argv[4:]:
    p.token_embedding_type = p.output_tensor_type = llama_cpp.GGML_TYPE_F32
p.nthread = 0
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
sys.exit(1 if rc else 0)
