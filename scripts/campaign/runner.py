"""Running one case and classifying it: `execute` writes the case's files into a
fresh directory, runs mpc there under a timeout and an address-space limit (with
RUST_BACKTRACE=1), and `classify` says clean / ok / panic / hang / abort; `keep` moves a
non-clean case's directory to findings/ with its reproducer `cmd.sh`."""

import os
import re
import resource
import shlex
import shutil
import subprocess
import time


def limit_memory(gb):
    def apply():
        os.setsid()
        limit = int(gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def execute(case, mpc, work, timeout, memory_gb):
    """Runs `case` in `work`/<class>-<n>; returns (kind, code, seconds, stdout, stderr)."""
    d = work / f"{case.cls}-{case.n}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for rel, data in case.files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if case.setup:
        subprocess.run(["sh", "-c", case.setup], cwd=d, check=True)
    t = time.monotonic()
    env = dict(os.environ, RUST_BACKTRACE="1")
    opened = []

    def stream(how):
        if how is None:
            return subprocess.PIPE
        if how == "closed":
            r, w = os.pipe()
            os.close(r)
            opened.append(w)
            return w
        f = open(how, "wb")
        opened.append(f)
        return f

    proc = subprocess.Popen([mpc] + case.args, cwd=d, stdin=subprocess.DEVNULL, env=env,
                            stdout=stream(case.stdout), stderr=stream(case.stderr),
                            preexec_fn=limit_memory(memory_gb))
    for o in opened:
        o.close() if hasattr(o, "close") else os.close(o)
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        code = None
    dt = time.monotonic() - t
    out = (out or b"").decode("utf-8", "replace")
    err = (err or b"").decode("utf-8", "replace")
    return classify(code, err, stderr_readable=case.stderr is None), code, dt, out, err, d


def classify(code, err, stderr_readable=True):
    """A clean failure is exit 1 with an `error:` line, or exit 1 alone when the case
    made stderr unwritable (/dev/full, a closed pipe): the line had nowhere to go."""
    if code is None:
        return "hang"
    if code == 101 or "panicked at" in err:
        return "panic"
    if code == 0:
        return "ok"
    if code == 1 and (not stderr_readable or any(line.startswith("error:") for line in err.splitlines())):
        return "clean"
    return "abort"


def signature(err):
    """Where a run failed: a panic's location and message, or an abort's message and
    first mpc stack frame (RUST_BACKTRACE=1 is set for every run)."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    frames = [line.split(": ", 1)[1] for line in lines if re.match(r"\d+: ", line)]
    mpc = next((f for f in frames if f.startswith("mpc")), None)
    where = f" in {mpc}" if mpc else ""
    for k, line in enumerate(lines):
        if "panicked at" in line:
            message = lines[k + 1][:120] if k + 1 < len(lines) else ""
            return line[line.index("panicked at"):] + " " + message + where
    first = lines[0][:120] if lines else "(no stderr)"
    return re.sub(r"\d{4,}", "N", first) + where


def keep(case, kind, code, dt, out, err, d, findings):
    """Moves a non-clean case's directory to findings/, with its reproducer."""
    dest = findings / f"{case.cls}-{case.n}"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.move(str(d), dest)
    # The setup made FIFOs and links in the directory: cmd.sh makes them again.
    for rel in list(dest.rglob("*")):
        if rel.is_fifo() or rel.is_symlink():
            rel.unlink()
    cmd = "#!/bin/sh\n# " + case.desc.replace("\n", " ") + "\ncd \"$(dirname \"$0\")\"\n"
    if case.setup:
        cmd += case.setup + "\n"
    redirect = {None: "", "/dev/full": " >/dev/full", "closed": " | true"}[case.stdout]
    redirect += {None: "", "/dev/full": " 2>/dev/full", "closed": " 2>&1 >/dev/null | true"}[case.stderr]
    cmd += "\"${MPC:-mpc}\" " + " ".join(shlex.quote(a) for a in case.args) + redirect + "\n"
    (dest / "cmd.sh").write_text(cmd)
    (dest / "stdout.txt").write_text(out)
    (dest / "stderr.txt").write_text(err)
    (dest / "result.txt").write_text(f"{kind} exit={code} seconds={dt:.2f}\n")
