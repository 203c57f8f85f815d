"""CPU time and memory of a process, read from /proc."""

import os
import resource

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of the whole process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name (field 2) may contain spaces; fields after its closing ')' are fixed.
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS_PER_S


def memory_kib(pid):
    """VmRSS (resident now) and VmHWM (peak resident) in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    if len(out) != 2:
        raise RuntimeError(f"/proc/{pid}/status has no VmRSS/VmHWM (did the process exit?)")
    return out["VmRSS"], out["VmHWM"]


def busy_seconds(cpus):
    """Time the given CPUs spent on anything but idle and iowait (all processes, the kernel,
    interrupts), from /proc/stat, in seconds. `cpus` is a list of CPU numbers."""
    wanted = {f"cpu{c}" for c in cpus}
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name in wanted:
                # user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
                v = [int(x) for x in values[:8]]
                total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return total / _TICKS_PER_S


def children_cpu_seconds():
    """utime + stime of every child this process has waited for (wrk runs), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
