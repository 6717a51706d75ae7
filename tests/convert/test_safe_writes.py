"""What the writing tools do around their files (docs/robustness.md):
an existing output is refused unless --force, the input is never
overwritten (not even through another name), a FIFO named as an input is
refused at once, a .stb given to bllm-convert is named for what it is, a
model that would not load (a vocabulary repeating a piece) is not kept, a
signal mid-write leaves nothing behind, two writers of one path both end
with a whole file, a second Ctrl-C stops bllm-perplexity at once, and every
tool names an unknown option as unknown even when it comes last."""
import os
import signal
import stat
import subprocess
import tempfile
import time

import convert_common as cc
import gguf_fixture as fx

# subprocess limits grow with the whole run's (scripts/test.sh -t N, scripts/sanitize.sh)
TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))

chk = cc.Checker("safe-writes")
TOOLS = os.path.join(cc.BUILD, "tools")
RANDOM = os.path.join(TOOLS, "bllm-random")


def tool(name):
    return os.path.join(TOOLS, name)


def run(args, timeout=60):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout * TIMEOUT_SCALE)


def leftovers(d, base):
    return [f for f in os.listdir(d) if f.startswith(base + ".tmp")]


with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "tiny.gguf")
    fx.write(src, seed=5)
    out = os.path.join(d, "out.stb")
    conv = [cc.CONVERT, src, "-o", out, "-q"]

    p = run(conv)
    chk.check(p.returncode == 0 and os.path.exists(out), f"first conversion: rc {p.returncode} {p.stderr!r}")
    before = os.stat(out)
    p = run(conv)
    chk.check(p.returncode == 1 and "exists" in p.stderr and "--force" in p.stderr,
              f"existing output without --force: rc {p.returncode} {p.stderr!r}")
    chk.eq(os.stat(out).st_mtime_ns, before.st_mtime_ns, "the existing output is untouched")
    os.chmod(out, stat.S_IRUSR)
    p = run(conv)
    chk.check(p.returncode == 1 and "exists" in p.stderr, f"read-only existing output: rc {p.returncode}")
    p = run(conv + ["--force"])
    chk.check(p.returncode == 0 and os.stat(out).st_ino != before.st_ino,
              f"--force replaces it (a new file): rc {p.returncode} {p.stderr!r}")
    chk.eq(leftovers(d, "out.stb"), [], "no temporary left after the conversions")

    # the input itself, by its name and through a hard link
    copy = os.path.join(d, "copy.gguf")
    os.link(src, copy)
    size = os.path.getsize(src)
    for target in (src, copy):
        p = run([cc.CONVERT, src, "-o", target, "-q", "--force"])
        chk.check(p.returncode == 1 and "is the input" in p.stderr,
                  f"output {os.path.basename(target)} = the input: rc {p.returncode} {p.stderr!r}")
    chk.eq(os.path.getsize(src), size, "the input is intact")

    # a FIFO as input: refused at once, by what it is
    fifo = os.path.join(d, "fifo")
    os.mkfifo(fifo)
    for args in ([cc.CONVERT, fifo, "-o", os.path.join(d, "f.stb")], [tool("bllm-info"), fifo],
                 [tool("bllm-run"), "-m", fifo, "-p", "x", "-n", "1"],
                 [tool("bllm-quantize"), out, "-o", os.path.join(d, "q.stb"), "--method", "billm",
                  "--calib", fifo]):
        try:
            p = run(args, timeout=20)
            chk.check(p.returncode != 0 and "FIFO" in p.stderr,
                      f"{os.path.basename(args[0])} with a FIFO: rc {p.returncode} {p.stderr.strip()!r}")
        except subprocess.TimeoutExpired:
            chk.check(False, f"{os.path.basename(args[0])} with a FIFO hangs")

    p = run([cc.CONVERT, out, "-o", os.path.join(d, "again.stb")])
    chk.check(p.returncode == 1 and "already a .stb model" in p.stderr, f".stb into bllm-convert: {p.stderr!r}")

    # a vocabulary repeating a piece converts but cannot load: not kept
    dup = os.path.join(d, "dup.gguf")
    fx.write(dup, seed=5, edit_tokens=lambda t: t.__setitem__(len(t) - 1, t[len(t) - 2]))
    dout = os.path.join(d, "dup.stb")
    p = run([cc.CONVERT, dup, "-o", dout, "-q"])
    chk.check(p.returncode == 1 and "does not load back" in p.stderr and not os.path.exists(dout),
              f"duplicate vocabulary piece: rc {p.returncode} {p.stderr.strip()!r}")
    chk.eq(leftovers(d, "dup.stb"), [], "no temporary left by the refused model")

    # a signal mid-write: the temporary goes, no output appears
    for sig in (signal.SIGTERM, signal.SIGINT):
        big = os.path.join(d, "big.stb")
        q = subprocess.Popen([RANDOM, "tinyllama-1.1b", "-o", big, "-q"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not leftovers(d, "big.stb") and time.time() < deadline and q.poll() is None:
            time.sleep(0.02)
        started = bool(leftovers(d, "big.stb"))
        q.send_signal(sig)
        rc = q.wait(timeout=60 * TIMEOUT_SCALE)
        chk.check(started and rc == -sig and not os.path.exists(big) and not leftovers(d, "big.stb"),
                  f"{signal.Signals(sig).name} while writing: started {started}, rc {rc}, left "
                  f"{leftovers(d, 'big.stb')}, output {os.path.exists(big)}")

    # two writers of one path: each its own temporary, the survivor whole
    two = os.path.join(d, "two.stb")
    procs = [subprocess.Popen([RANDOM, "smollm2-135m", "-o", two, "-q", "-s", str(s), "--force"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    rcs = [q.wait(timeout=300 * TIMEOUT_SCALE) for q in procs]
    p = run([tool("bllm-info"), two, "--verify"])
    chk.check(rcs == [0, 0] and p.returncode == 0 and not leftovers(d, "two.stb"),
              f"two writers: rcs {rcs}, the result verifies: rc {p.returncode} {p.stderr.strip()!r}")

    # bllm-perplexity: a first SIGINT waits for the window, a second stops at once
    wiki = os.path.join(cc.SHARED, "data", "wiki.test.raw")
    if os.path.exists(wiki) and os.path.exists(two):
        q = subprocess.Popen([tool("bllm-perplexity"), "-m", two, "-f", wiki, "-c", "2048", "-t", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # its plan line comes once the handler is in place (loading and
        # tokenizing took 0.3-2.5 s here, so a fixed wait raced it)
        first = q.stderr.readline()
        q.send_signal(signal.SIGINT)
        time.sleep(0.3)
        t0 = time.time()
        q.send_signal(signal.SIGINT)
        rc = q.wait(timeout=60 * TIMEOUT_SCALE)
        err = first + q.stderr.read()
        chk.check(rc == -signal.SIGINT and time.time() - t0 < 5 * TIMEOUT_SCALE and "stopping now" in err,
                  f"bllm-perplexity, Ctrl-C twice: rc {rc} after {time.time() - t0:.1f} s, {err[-200:]!r}")
    else:
        chk.check(False, f"MISSING: {wiki} for the perplexity interrupt check")

    # unknown options, given last
    for name, args in [("bllm-convert", [src, "-o", os.path.join(d, "u.stb")]),
                       ("bllm-quantize", [out, "-o", os.path.join(d, "u.stb")]),
                       ("bllm-random", ["smollm2-135m", "-o", os.path.join(d, "u.stb")]),
                       ("bllm-run", ["-m", out]), ("bllm-perplexity", ["-m", out]), ("bllm-bench", ["-m", out]),
                       ("bllm-info", [out])]:
        p = run([tool(name)] + args + ["--no-such-option"])
        chk.check(p.returncode == 2 and "unknown option" in p.stderr and "--no-such-option" in p.stderr,
                  f"{name} --no-such-option last: rc {p.returncode} {p.stderr.strip()[:120]!r}")
    p = run([tool("bllm-run"), "-m", out, "-n"])
    chk.check(p.returncode == 2 and "needs a value" in p.stderr, f"bllm-run -n last: {p.stderr.strip()!r}")

chk.finish()
