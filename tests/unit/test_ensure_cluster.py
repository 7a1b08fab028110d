"""scripts/ensure-cluster.sh fails loudly, never quietly: with a package
missing and no way to install it, it stops with ``[cluster] FATAL: …``
naming what, and exit 1 (``make cluster`` and ``make test`` stop there)."""

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ensure-cluster.sh"
# What the script itself needs to run, and nothing it checks for.
TOOLS = ("bash", "id", "printf", "sort", "ls", "head", "base64", "tr", "chown", "chmod")


def run_with_only(tmp_path, *present):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (*TOOLS, *present):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_missing_package_without_apt_is_fatal(tmp_path):
    ran = run_with_only(tmp_path)
    assert ran.returncode == 1
    if os.geteuid() != 0:  # what it checks first
        assert "[cluster] FATAL: run as root" in ran.stderr
        return
    assert "[cluster] FATAL: apt-get not found; install" in ran.stderr
    for package in ("patroni", "etcd-server", "haproxy", "prometheus"):
        assert package in ran.stderr


def test_not_root_is_fatal(tmp_path):
    if os.geteuid() == 0:
        # The script on stdin: a clone in a private directory (mktemp -d)
        # is not readable by nobody.
        ran = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "bash", "-s"],
            input=SCRIPT.read_text(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    else:
        ran = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert ran.returncode == 1
    assert "[cluster] FATAL: run as root" in ran.stderr
