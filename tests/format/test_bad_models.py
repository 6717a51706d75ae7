"""bllm-run on damaged or inconsistent models, and on bad requests.

Every case must end with a non-zero exit status that is not a signal (no
crash), and a message on stderr that names the problem. The damaged files are
made here from the real stories260K model converted by the build:
  truncated, wrong magic, tensor offset past the end, hyperparameters that
  disagree with the tensor shapes, a NaN in a norm weight, a flipped data
  byte (caught with --verify), a missing file; and a prompt longer than the
  context.
Directory/metadata edits re-seal the index checksum (XXH3-64) so that the
specific check, not the checksum, has to catch them.

usage: test_bad_models.py BLLM_RUN MODEL.stb
"""
import os
import struct
import subprocess
import sys
import tempfile

import xxhash

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

HEADER = struct.Struct("<8sIIQQQQQIIQQQ40s")
FIELDS = ("magic version header_bytes file_bytes meta_offset meta_bytes dir_offset "
          "dir_bytes n_meta n_tensors data_offset data_bytes index_checksum reserved").split()

failures = 0
checks = 0


def check(cond, msg):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL", msg)


def header(b):
    return dict(zip(FIELDS, HEADER.unpack_from(b, 0)))


def reseal(b):
    h = header(b)
    start, end = h["meta_offset"], h["dir_offset"] + h["dir_bytes"]
    h["index_checksum"] = xxhash.xxh3_64_intdigest(bytes(b[start:end]))
    HEADER.pack_into(b, 0, *[h[f] for f in FIELDS])


def walk_meta(b):
    """Yield (key, type, value_offset) for scalar metadata entries."""
    h = header(b)
    p = h["meta_offset"]
    sizes = {0: 1, 1: 1, 2: 4, 3: 4, 4: 4, 5: 8, 6: 8}
    for _ in range(h["n_meta"]):
        (klen,) = struct.unpack_from("<H", b, p)
        key = bytes(b[p + 2:p + 2 + klen]).decode()
        t = b[p + 2 + klen]
        v = p + 3 + klen
        yield key, t, v
        if t == 7:
            (n,) = struct.unpack_from("<I", b, v)
            p = v + 4 + n
        elif t == 8:
            et = b[v]
            (count,) = struct.unpack_from("<Q", b, v + 1)
            q = v + 9
            if et == 7:
                for _ in range(count):
                    (n,) = struct.unpack_from("<I", b, q)
                    q += 4 + n
            else:
                q += count * sizes[et]
            p = q
        else:
            p = v + sizes[t]


def walk_dir(b):
    """Yield (name, entry_offset_after_name, ndim) for each tensor."""
    h = header(b)
    p = h["dir_offset"]
    for _ in range(h["n_tensors"]):
        (nlen,) = struct.unpack_from("<H", b, p)
        name = bytes(b[p + 2:p + 2 + nlen]).decode()
        e = p + 2 + nlen
        (ndim,) = struct.unpack_from("<I", b, e + 4)
        yield name, e, ndim
        p = e + 8 + 8 * ndim + 24


def tensor_field(b, tname, field):
    for name, e, ndim in walk_dir(b):
        if name == tname:
            base = e + 8 + 8 * ndim
            return base + {"offset": 0, "nbytes": 8, "checksum": 16}[field], e
    raise KeyError(tname)


def run(bllm_run, model, *extra):
    cmd = [bllm_run, "-m", model, "-n", "4", "--temp", "0", "-t", "1", *extra]
    if "-p" not in extra:
        cmd += ["-p", "Once upon a time"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, stdin=subprocess.DEVNULL)


def expect_refusal(bllm_run, what, model, needle, *extra):
    r = run(bllm_run, model, *extra)
    ok = 0 < r.returncode < 128 and needle in r.stderr
    check(r.returncode > 0, f"{what}: exit status {r.returncode} (wanted a non-zero exit)")
    check(r.returncode < 128, f"{what}: killed by a signal (status {r.returncode})")
    check(needle in r.stderr, f"{what}: stderr lacks {needle!r}: {r.stderr.strip()!r}")
    print(("ok  " if ok else "BAD ") + f" {what:<38} -> {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")


def main():
    bllm_run, model = sys.argv[1], sys.argv[2]
    if not os.path.exists(model) or open(model, "rb").read(8) == b"MISSING:":
        print(f"MISSING: converted test model {model} (stories260K from $BLLM_SHARED/data/stories260K)")
        return 1
    good = bytearray(open(model, "rb").read())
    r = run(bllm_run, model)
    check(r.returncode == 0, f"the good model must run: {r.stderr}")

    with tempfile.TemporaryDirectory() as d:
        def variant(name, mutate):
            b = bytearray(good)
            b = mutate(b) or b
            path = os.path.join(d, name)
            open(path, "wb").write(b)
            return path

        expect_refusal(bllm_run, "truncated file", variant("trunc.stb", lambda b: b[: len(b) // 2]), "truncated")
        expect_refusal(bllm_run, "truncated inside the header", variant("trunc2.stb", lambda b: b[:60]), "truncated")

        def magic(b):
            b[0:8] = b"NOTMODEL"
        expect_refusal(bllm_run, "wrong magic", variant("magic.stb", magic), "wrong magic")

        def offset_oob(b):
            off, _ = tensor_field(b, "blk.0.ffn_down.weight", "offset")
            struct.pack_into("<Q", b, off, header(b)["data_bytes"] + 64 * 1024)
            reseal(b)
        expect_refusal(bllm_run, "tensor offset past the end", variant("oob.stb", offset_oob), "outside the data")

        def shape_mismatch(b):
            for key, t, v in walk_meta(b):
                if key == "llama.hidden_dim":
                    (x,) = struct.unpack_from("<I", b, v)
                    struct.pack_into("<I", b, v, x + 4)
            reseal(b)
        expect_refusal(bllm_run, "hyperparameters vs tensor shapes", variant("shape.stb", shape_mismatch),
                       "the hyperparameters need")

        def nan_norm(b):
            off, _ = tensor_field(b, "blk.1.attn_norm.weight", "offset")
            (o,) = struct.unpack_from("<Q", b, off)
            struct.pack_into("<f", b, header(b)["data_offset"] + o + 8, float("nan"))
        expect_refusal(bllm_run, "NaN in a norm weight", variant("nan.stb", nan_norm), "non-finite")

        def flip_data(b):
            off, _ = tensor_field(b, "blk.2.attn_q.weight", "offset")
            (o,) = struct.unpack_from("<Q", b, off)
            b[header(b)["data_offset"] + o + 100] ^= 0x10
        expect_refusal(bllm_run, "corrupt weights (--verify)", variant("flip.stb", flip_data), "checksum",
                       "--verify")

        expect_refusal(bllm_run, "missing file", os.path.join(d, "nope.stb"), "cannot open")
        expect_refusal(bllm_run, "prompt longer than the context", model, "fit in the context", "-c", "8",
                       "-p", "Once upon a time there was a little girl who loved to play in the park")
        expect_refusal(bllm_run, "context above the model's", model, "exceeds", "-c", "100000")
        expect_refusal(bllm_run, "bad flag value", model, "bad value", "--top-p", "7")

    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
