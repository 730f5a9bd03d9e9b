"""Blosc codecs for the raw frames in Zarr: compression ratio and speed, measured.

    python benchmarks/codec_benchmark.py STORE.zarr [--frames 500]

Reads frames from an existing store (any sample), then encodes and decodes them with
each candidate codec through numcodecs, single-threaded as in the Dask workers.
"""

from __future__ import annotations

import argparse
import time

import numcodecs
import numcodecs.blosc

from xrdmap.store import open_store, sample_group, samples

CANDIDATES = [
    ("lz4", 5, numcodecs.Blosc.SHUFFLE),
    ("lz4", 5, numcodecs.Blosc.BITSHUFFLE),
    ("zstd", 1, numcodecs.Blosc.SHUFFLE),
    ("zstd", 3, numcodecs.Blosc.SHUFFLE),
    ("zstd", 3, numcodecs.Blosc.BITSHUFFLE),
    ("lz4hc", 5, numcodecs.Blosc.SHUFFLE),
]
SHUFFLE_NAMES = {numcodecs.Blosc.SHUFFLE: "shuffle", numcodecs.Blosc.BITSHUFFLE: "bitshuffle"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("--frames", type=int, default=500)
    args = parser.parse_args()
    numcodecs.blosc.use_threads = False
    numcodecs.blosc.set_nthreads(1)
    root = open_store(args.store)
    frames = sample_group(root, samples(root)[0])["frames"][: args.frames]
    chunk = frames[:100]  # one Zarr chunk of frames, as stored
    print(f"{len(frames)} frames of {frames.shape[1:]} int32, chunks of {len(chunk)} frames")
    print(f"{'codec':28} {'ratio':>6} {'encode ms/frame':>16} {'decode ms/frame':>16}")
    for cname, clevel, shuffle in CANDIDATES:
        codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle)
        n_chunks = max(1, len(frames) // len(chunk))
        t0 = time.perf_counter()
        encoded = [codec.encode(frames[i * 100 : (i + 1) * 100]) for i in range(n_chunks)]
        t_enc = (time.perf_counter() - t0) / (n_chunks * len(chunk))
        t0 = time.perf_counter()
        for blob in encoded:
            codec.decode(blob)
        t_dec = (time.perf_counter() - t0) / (n_chunks * len(chunk))
        ratio = frames[: n_chunks * 100].nbytes / sum(len(b) for b in encoded)
        name = f"{cname} clevel={clevel} {SHUFFLE_NAMES[shuffle]}"
        print(f"{name:28} {ratio:6.2f} {t_enc * 1e3:16.3f} {t_dec * 1e3:16.3f}")


if __name__ == "__main__":
    main()
