"""What the text encoder costs per prompt: the `minilm` encoder (6-layer BERT, frozen) against `scratch`
embeddings, alone and as a share of drawing an image, at the built-in shapes shape (dalle, width 256,
depth 6, 24 text tokens; untrained weights, which do not change the time). Cases are interleaved.

    python benchmarks/text_encoder_cost.py [--threads 2] [--repeats 20] [--batch 1,16]

"encoder" is tokenising + the text states a generator reads (scratch: an embedding lookup; minilm: BERT and
the projection); "draw" is pipe.draw() for the batch with guidance 2 and 1 candidate: encoding, sampling,
VAE decode. Medians in milliseconds per call.
"""

import argparse
import platform
import statistics
import time

import torch

from wordbrush.generators.dalle import DALLE, DalleConfig
from wordbrush.generators.options import SampleOptions
from wordbrush.image.vae import DiscreteVAE, VAEConfig
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.text.minilm import load_tokenizer
from wordbrush.text.tokenizer import TextTokenizer

PROMPT = "a red circle to the left of a blue square"


def pipeline(encoder: str) -> TextToImagePipeline:
    if encoder == "minilm":
        tok = load_tokenizer()
    else:
        tok = TextTokenizer.train([PROMPT, "two green triangles", "a purple diamond above a white cross"], 300)
    cfg = DalleConfig(text_vocab=tok.vocab_size, text_len=24, image_vocab=512, image_grid=8, dim=256, depth=6,
                      heads=8, text_encoder=encoder, text_loss_weight=0.125 if encoder == "scratch" else 0.0)
    vae = DiscreteVAE(VAEConfig(image_size=64, channels=(64, 128, 256), num_codes=512))
    vae.quantizer.initialised.fill_(True)
    return TextToImagePipeline(tok, DALLE(cfg).eval(), vae.eval())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch", default="1,16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pipes = {e: pipeline(e) for e in ("scratch", "minilm")}
    print(f"text encoder cost, {args.threads} threads, median of {args.repeats} interleaved runs, ms per call; "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}\n")
    print("| batch | encoder | encode (ms) | draw (ms) | encode share |")
    print("|---|---|---|---|---|")
    opts = SampleOptions(guidance_scale=2.0)
    for b in (int(x) for x in args.batch.split(",")):
        prompts = [PROMPT] * b
        enc: dict[str, list[float]] = {e: [] for e in pipes}
        draw: dict[str, list[float]] = {e: [] for e in pipes}
        with torch.no_grad():
            for r in range(args.repeats + 2):  # two warm-up rounds
                for e, pipe in pipes.items():
                    t = time.perf_counter()
                    ids = pipe.tokenizer.encode(prompts, 24).ids
                    pipe.generator.embed(ids)
                    t1 = time.perf_counter()
                    pipe.draw(prompts, list(range(b)), opts)
                    t2 = time.perf_counter()
                    if r >= 2:
                        enc[e].append(1000 * (t1 - t))
                        draw[e].append(1000 * (t2 - t1))
        for e in pipes:
            me, md = statistics.median(enc[e]), statistics.median(draw[e])
            print(f"| {b} | {e} | {me:.2f} | {md:.1f} | {100 * me / md:.1f}% |")


if __name__ == "__main__":
    main()
