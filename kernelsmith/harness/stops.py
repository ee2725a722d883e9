"""How a GPU-stage evaluation ends early: a Stop carries the verdict, the error class and
the message; `classify` turns an exception raised by candidate code into one."""

from __future__ import annotations

CUDA_FAULT_MARKERS = ("illegal memory access", "unspecified launch failure", "misaligned address",
                      "illegal instruction", "device-side assert", "an illegal", "CUDA error",
                      "cudaError", "CUDA_ERROR", "launch timed out")


class Stop(Exception):
    """Ends the evaluation with a verdict."""

    def __init__(self, verdict: str, error: str, message: str):
        super().__init__(message)
        self.verdict, self.error, self.message = verdict, error, message


def classify(exc: BaseException, where: str) -> Stop:
    text = f"{type(exc).__name__}: {exc}"
    short = text if len(text) < 1500 else text[:1500] + " [...]"
    if "out of memory" in text.lower():
        return Stop("runtime_error", "oom", f"{where}: out of memory: {short}")
    if any(m in text for m in CUDA_FAULT_MARKERS):
        return Stop("runtime_error", "cuda_fault", f"{where}: CUDA fault (the context is lost): {short}")
    return Stop("runtime_error", "forward" if where == "forward" else where, f"{where} raised {short}")
