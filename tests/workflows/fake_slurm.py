"""Stand-ins for the SLURM commands, so that the SLURM executor plugin can run without a cluster.

Run as ``python fake_slurm.py COMMAND ARGS...``: ``tests/workflows/test_slurm.py``
puts one small executable per command (``sbatch``, ``srun``, ``squeue``,
``sacct``, ``scancel``, ``sinfo``, ``scontrol``, ``sacctmgr``) first on
``PATH``, each calling this file with its own name, and points
``FAKE_SLURM_STATE`` at a folder.

Every call appends ``{"command": name, "args": [...]}`` to
``$FAKE_SLURM_STATE/calls.jsonl``. ``sbatch`` runs the submitted job to the
end before it answers (a cluster with an idle node, only synchronous), keeps
its state in ``jobs/ID.json`` and prints the job id, as ``--parsable`` asks.
``sacct`` and ``squeue`` answer the plugin's status query with ``ID|STATE``
lines, ``COMPLETED`` or ``FAILED`` (the job's exit status was not 0), for the
jobs of the queried job name. ``srun`` drops its options and runs the
command. ``sinfo`` lists the partitions ``cpu*`` (the default) and ``gpu``;
``sacctmgr`` knows the account ``lab``; ``scontrol`` reports a MaxArraySize.

``FAKE_SLURM_MIN_MEM_MB``, a JSON mapping of job comment (the plugin's
``rule_NAME_wildcards_VALUES``) to MB, makes the cluster kill such a job
asking for less ``--mem`` than that: it ends ``OUT_OF_MEMORY`` without running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ACCOUNT = "lab"


def option(args: list[str], *names: str) -> str | None:
    """The value of the first of ``names`` in ``args`` (``--name value``, ``--name=value`` or ``-X value``)."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def _state() -> Path:
    return Path(os.environ["FAKE_SLURM_STATE"])


def _record(command: str, args: list[str]) -> None:
    line = json.dumps({"command": command, "args": args}) + "\n"
    fd = os.open(_state() / "calls.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write with O_APPEND: concurrent submissions do not interleave
    finally:
        os.close(fd)


def _new_job_id() -> int:
    """The next free job id; exclusive creation keeps concurrent submissions apart."""
    jobs = _state() / "jobs"
    jobs.mkdir(exist_ok=True)
    job_id = 1000 + len(list(jobs.glob("*.id")))
    while True:
        try:
            os.close(os.open(jobs / f"{job_id}.id", os.O_CREAT | os.O_EXCL))
            return job_id
        except FileExistsError:
            job_id += 1


def sbatch(args: list[str]) -> int:
    script = option(args, "--wrap")
    if script is None:  # the plugin's pass_command_as_script mode: the script comes on stdin
        script = sys.stdin.read()
    job_id = _new_job_id()
    workdir = option(args, "-D", "--chdir") or os.getcwd()
    log = option(args, "--output", "-o") or f"slurm-{job_id}.out"
    log_path = Path(workdir, log.replace("%j", str(job_id)))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SLURM_JOB_ID": str(job_id), "SLURM_JOBID": str(job_id), "SLURM_JOB_NAME": option(args, "--job-name", "-J") or ""}
    cpus = option(args, "--cpus-per-task", "-c")
    if cpus:
        env["SLURM_CPUS_PER_TASK"] = cpus
    gpus = option(args, "--gpus")
    if gpus:
        env["SLURM_GPUS"] = gpus
    min_mem = json.loads(os.environ.get("FAKE_SLURM_MIN_MEM_MB", "{}")).get(option(args, "--comment"))
    if min_mem is not None and int(option(args, "--mem") or 0) < min_mem:
        state = {"name": env["SLURM_JOB_NAME"], "state": "OUT_OF_MEMORY", "exit_code": 137}
    else:
        with open(log_path, "w") as out:
            rc = subprocess.run(
                ["/bin/sh", "-c", script], cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            ).returncode
        state = {"name": env["SLURM_JOB_NAME"], "state": "COMPLETED" if rc == 0 else "FAILED", "exit_code": rc}
    final = _state() / "jobs" / f"{job_id}.json"
    final.with_suffix(".tmp").write_text(json.dumps(state))
    final.with_suffix(".tmp").replace(final)  # a status query never reads half a file
    print(job_id)
    return 0


def _job_states(name: str | None) -> list[tuple[str, str]]:
    rows = []
    for path in sorted((_state() / "jobs").glob("*.json")):
        job = json.loads(path.read_text())
        if name is None or job["name"] == name:
            rows.append((path.stem, job["state"]))
    return rows


def sacct(args: list[str]) -> int:
    if "--format=JobIdRaw,State" in args:  # the plugin's status query
        for job_id, state in _job_states(option(args, "--name")):
            print(f"{job_id}|{state}")
    # other queries (account guess, failure reasons) get an empty answer, as from a fresh cluster
    return 0


def squeue(args: list[str]) -> int:
    for job_id, state in _job_states(option(args, "--name")):
        print(f"{job_id}|{state}")
    return 0


def srun(args: list[str]) -> int:
    command = list(args)
    while command and command[0].startswith("-"):
        command.pop(0)
    if not command:
        print("srun: no command", file=sys.stderr)
        return 1
    os.execvp(command[0], command)
    return 1  # not reached


def sinfo(args: list[str]) -> int:
    print("PARTITION\ncpu*\ngpu")
    return 0


def scontrol(args: list[str]) -> int:
    print("MaxArraySize            = 1001")  # no MinJobAge: the plugin keeps its sacct default quietly
    return 0


def sacctmgr(args: list[str]) -> int:
    print(ACCOUNT)
    return 0


def scancel(args: list[str]) -> int:
    return 0


COMMANDS = {
    "sbatch": sbatch, "srun": srun, "squeue": squeue, "sacct": sacct, "scancel": scancel,
    "sinfo": sinfo, "scontrol": scontrol, "sacctmgr": sacctmgr,
}


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    _record(command, args)
    return COMMANDS[command](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
