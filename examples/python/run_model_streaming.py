"""Run a GGUF model and print the text as it is generated.

    python examples/python/run_model_streaming.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
        -p "What is the capital of France?" --chat -n 64

Loading shows a progress bar; Ctrl-C stops loading or generation cleanly.
"""

import argparse
import sys
import time

import halfbyte


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .gguf file (or llama2.c checkpoint, or HF safetensors folder)")
    p.add_argument("-p", "--prompt", default="Once upon a time")
    p.add_argument("-n", "--max-tokens", type=int, default=128)
    p.add_argument("-t", "--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    a = p.parse_args()
    try:
        with halfbyte.Model(a.model, progress=True) as m:
            t0 = time.perf_counter()
            n = 0
            if not a.chat:
                print(a.prompt, end="", flush=True)
            for piece in m.generate(a.prompt, max_tokens=a.max_tokens, temperature=a.temperature, seed=a.seed,
                                    chat=a.chat, stream=True):
                print(piece, end="", flush=True)
                n += 1
            seconds = time.perf_counter() - t0
            print(f"\n[{n} pieces in {seconds:.2f} s]", file=sys.stderr)
    except KeyboardInterrupt:
        print("\n[interrupted]", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
