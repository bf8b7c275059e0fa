"Timing shared by the benchmark scripts (run them as `python tests/benchmarks/bench_<name>.py`)."
import time

import torch


def timer(dev):
    "A function that runs `fn` once and returns its time in ms (CUDA events on the GPU)."
    if dev.type == "cuda":
        def run(fn):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(); a.record(); fn(); b.record(); torch.cuda.synchronize()
            return a.elapsed_time(b)
    else:
        def run(fn):
            t = time.perf_counter(); fn(); return (time.perf_counter() - t) * 1e3
    return run
