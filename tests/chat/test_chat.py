"""The chat: bllm's template formats and bllm-run --chat.

  test_chat.py template CHAT_FORMAT MODEL.stb GGUF
      SmolLM2's conversations as bllm formats them (tests/chat/chat_format.c)
      must equal Jinja's rendering of the model's own chat template, read
      from the GGUF with gguf-py, the way HF's apply_chat_template renders
      it (jinja2 sandbox, trim_blocks, lstrip_blocks): three turns with and
      without a system message, with and without the generation prompt.
      Every family: the property the chat loop relies on (a conversation
      formatted with the generation prompt, plus the answer, is a prefix of
      the conversation formatted with that answer), and bad roles refused.
  test_chat.py pipe BLLM_RUN MODEL.stb
      stdin not a terminal: one turn per line, answers on stdout; /reset;
      a conversation longer than -c drops its oldest turns, keeps the system
      prompt, and goes on.
  test_chat.py pty BLLM_RUN MODEL.stb
      through a pseudo-terminal: the prompt, Ctrl-C during an answer (back to
      the prompt), /reset, Ctrl-C at the prompt (exit 0). """
import json
import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import time

TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))
failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    failures += not ok


def bllm_format(tool, model, style, msgs, add):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(msgs, f)
    try:
        r = subprocess.run([tool, model, style, f.name, "1" if add else "0"], capture_output=True, timeout=60)
    finally:
        os.unlink(f.name)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def template_of(gguf_path):
    from gguf import GGUFReader
    f = GGUFReader(gguf_path).fields["tokenizer.chat_template"]
    return bytes(f.parts[f.data[0]]).decode()


def jinja_render(template, msgs, add):
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=msgs, add_generation_prompt=add,
                                            bos_token="", eos_token="<|im_end|>")


CONV = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "And of Germany?\nAnswer in one word."},
    {"role": "assistant", "content": "Berlin."},
    {"role": "user", "content": "Thanks! 🙂"},
]


def test_template(chat_format, model, gguf):
    tmpl = template_of(gguf)
    for sys_msg in (None, "You are terse."):
        msgs = ([{"role": "system", "content": sys_msg}] if sys_msg else []) + CONV
        for add in (True, False):
            rc, got, err = bllm_format(chat_format, model, "auto", msgs, add)
            want = jinja_render(tmpl, msgs, add)
            check(rc == 0 and "style chatml" in err and got == want,
                  f"SmolLM2 template, {'a' if sys_msg else 'no'} system message, generation prompt {add}: "
                  f"{len(got)} chars equal Jinja's" if got == want else
                  f"SmolLM2 template: bllm {got!r}\n     Jinja {want!r} ({err.strip()})")
    # every family: prefix property, and the families' marker tokens
    markers = {"chatml": "<|im_start|>", "llama2": "[INST]", "llama3": "<|start_header_id|>",
               "mistral": "[INST]", "zephyr": "<|user|>", "gemma": "<start_of_turn>"}
    for style, mark in markers.items():
        ok = True
        msgs = [{"role": "system", "content": "Be brief."}] + CONV
        for k in range(1, len(msgs)):
            if msgs[k]["role"] != "assistant":
                continue
            _, head, _ = bllm_format(chat_format, "-", style, msgs[:k], True)
            _, whole, _ = bllm_format(chat_format, "-", style, msgs[:k + 1], False)
            stripped = style in ("llama2", "mistral")  # their answers go in trimmed, after a space
            if not whole.startswith(head if stripped else head + msgs[k]["content"]):
                ok = False
                print(f"  {style}: {head!r} + answer is not a prefix of {whole!r}")
        _, whole, _ = bllm_format(chat_format, "-", style, msgs, True)
        ok = ok and mark in whole and all(m["content"].strip() in whole for m in msgs)
        check(ok, f"{style}: formatted prefixes stay prefixes; every message and the marker {mark} present")
    rc, _, err = bllm_format(chat_format, "-", "chatml", [{"role": "tool", "content": "x"}], True)
    check(rc != 0 and "role 'tool'" in err, f"a message with role 'tool' refused: {err.strip()!r}")


def run_chat(bllm_run, model, lines, *extra, timeout=240):
    cmd = [bllm_run, "-m", model, "--chat", "--temp", "0", "-t", "2", *extra]
    r = subprocess.run(cmd, input="".join(l + "\n" for l in lines).encode(), capture_output=True,
                       timeout=timeout * TIMEOUT_SCALE)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def test_pipe(bllm_run, model):
    rc, out, err = run_chat(bllm_run, model, ["Hi", "What is 2 + 2?", "/reset", "Hi"], "-n", "12")
    answers = [l for l in out.split("\n") if l.strip()]
    check(rc == 0 and len(answers) >= 3 and "[conversation reset]" in err,
          f"pipe: 3 turns answered on stdout, /reset noticed (rc {rc}, {len(answers)} answer lines)")
    check(answers[0] == answers[-1] if len(answers) >= 3 else False,
          f"pipe: after /reset the same first message gets the same greedy answer ({answers[:1]} / {answers[-1:]})")
    check("> " not in out and "chat (" not in out, "pipe: no prompt or banner on stdout")
    # -c 192: each turn is ~25 tokens of template plus a 24-token answer
    turns = [f"Tell me one fact about the number {i}." for i in range(8)]
    rc, out, err = run_chat(bllm_run, model, turns, "-n", "24", "-c", "192", "--system", "Answer briefly.")
    check(rc == 0 and "[context full: dropped" in err and "kept the system prompt" in err,
          f"pipe: a conversation longer than -c drops old turns and keeps the system prompt (rc {rc}; "
          f"{err.count('[context full: dropped')} drops)")
    check(len([l for l in out.split("\n") if l.strip()]) >= len(turns),
          "pipe: every turn answered after the drops")
    long = "word " * 400
    rc, out, err = run_chat(bllm_run, model, [long, "Hi"], "-n", "4", "-c", "128")
    check(rc == 0 and "too long for the context" in err and out.strip(),
          f"pipe: a message longer than the context is refused and the chat goes on (rc {rc})")
    # llama.cpp's -cnv means --chat, but not as the value of an option
    for args, is_chat in [(["-cnv"], True), (["-p", "-cnv"], False), (["--prom", "-cnv"], False),
                          (["-n", "2", "-cnv"], True)]:
        r = subprocess.run([bllm_run, "-m", model, *args, "-n", "2", "--temp", "0", "-t", "1"], input=b"Hi\n",
                           capture_output=True, timeout=60 * TIMEOUT_SCALE)
        out = r.stdout.decode(errors="replace")
        check(r.returncode == 0 and out.startswith("-cnv") != is_chat,
              f"bllm-run {' '.join(args)}: {'the chat' if is_chat else 'a prompt'} (rc {r.returncode}, "
              f"stdout {out[:40]!r})")


def read_until(fd, want, seconds):
    buf, end = b"", time.time() + seconds * TIMEOUT_SCALE
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            if want and want.encode() in buf:
                return buf, True
    return buf, want is None


def test_pty(bllm_run, model):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(bllm_run, [bllm_run, "-m", model, "--chat", "-n", "400", "--temp", "0.8", "-s", "1", "-t", "2"])
    try:
        buf, ok = read_until(fd, "> ", 120)
        check(ok, "pty: the prompt appears")
        os.write(fd, b"Write a very long story about a dragon.\r")
        buf, ok = read_until(fd, "dragon", 5)  # the echo
        buf, _ = read_until(fd, None, 3)       # some of the answer
        os.write(fd, b"\x03")
        buf2, ok = read_until(fd, "> ", 60)
        check(ok and b"[answer stopped]" in buf2, f"pty: Ctrl-C stops the answer and returns to the prompt "
                                                  f"({len(buf)} bytes of answer before it)")
        os.write(fd, b"/reset\r")
        buf, ok = read_until(fd, "> ", 30)
        check(ok and b"[conversation reset]" in buf, "pty: /reset")
        os.write(fd, b"\x03")
        end, status = time.time() + 30 * TIMEOUT_SCALE, None
        while time.time() < end and status is None:
            read_until(fd, None, 0.2)
            p, st = os.waitpid(pid, os.WNOHANG)
            status = st if p == pid else None
        check(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
              f"pty: Ctrl-C at the prompt exits with 0 (status {status})")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def main():
    mode, *args = sys.argv[1:]
    for a in args[1:]:
        if not os.path.exists(a):
            print(f"FAIL: missing {a}")
            return 1
        with open(a, "rb") as f:
            if f.read(8) == b"MISSING:":
                print(f"FAIL: {a} was not built (its source checkpoint is missing)")
                return 1
    {"template": test_template, "pipe": test_pipe, "pty": test_pty}[mode](*args)
    print(f"{'PASS' if not failures else 'FAIL'}: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
