"""Load time and peak RSS of halfbyte.Model on one file (docs/PERF.md, "Load time and memory").

    python3 bench/load_rss.py MODEL.gguf
"""
import resource, sys, time, os
import halfbyte
path = sys.argv[1]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); m = halfbyte.Model(path, n_ctx=512); load = time.perf_counter() - t
m.generate("The capital of France is", max_tokens=64)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
c = m.config
kv = 2 * 2 * c["n_layer"] * c["n_head_kv"] * c["head_dim"] * 512
print(f"{os.path.basename(path)}: file {os.path.getsize(path)/1e6:.1f} MB, load {load:.3f} s, "
      f"peak RSS - interpreter {(peak-base)/1e3:.1f} MB, KV cache (fp16, n_ctx 512) {kv/1e6:.1f} MB")
