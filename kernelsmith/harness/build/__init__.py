"""Fast builds for inline-CUDA (load_inline) candidates (docs/builds.md, issue 15).

layout  which layout a call's sources allow (light: CUDA code without torch headers; pch:
        torch's CUDA prelude, C++ side with the precompiled header; heavy: as written)
split   an LLM-style CUDA source cut in two: its kernels light, its torch wrappers in main.cpp
pch     kernelsmith's precompiled torch headers (torch/extension.h, and a slim set for main.cpp),
        one per torch/compiler/flags, in the cache
inline  one load_inline call built the fast way, the heavy way as the fallback, and the
        layout recorded so the GPU stage repeats the same call
"""
