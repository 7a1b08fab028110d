"""Run Kannel (Debian's ``kannel``: ``bearerbox`` + ``smsbox``) on this
machine, bound over SMPP to an SMSC — the simulator of ``devtools.smsc`` in
tests and ``make run SMS_GATEWAY=kannel``.

The configuration is ``deploy/kannel/kannel.conf.template`` with this run's
ports, credentials and directory filled in. Kannel logs at warning level
and keeps no access log: a message's text holds a code, and codes are never
logged.

``KannelGateway(smsc_port).start()`` → ``.sendsms_url``, ``.username``,
``.password``; ``.stop()``.
"""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from string import Template

from nameko.testing.utils import find_free_port

__all__ = ["KannelGateway", "kannel_installed"]

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy/kannel/kannel.conf.template"
BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"


def kannel_installed():
    return os.access(BEARERBOX, os.X_OK) and os.access(SMSBOX, os.X_OK)


def _listening(port):
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class KannelGateway:
    def __init__(self, smsc_port, smsc_host="127.0.0.1", workdir=None):
        self.smsc_host, self.smsc_port = smsc_host, smsc_port
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kannel-"))
        self.admin_port = find_free_port()
        self.smsbox_port = find_free_port()
        self.sendsms_port = find_free_port()
        self.username = "selfservice"
        self.password = secrets.token_hex(12)
        self.processes = []

    @property
    def sendsms_url(self):
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def config_text(self):
        return Template(TEMPLATE.read_text()).substitute(
            admin_port=self.admin_port,
            admin_password=secrets.token_hex(12),
            smsbox_port=self.smsbox_port,
            sendsms_port=self.sendsms_port,
            smsc_host=self.smsc_host,
            smsc_port=self.smsc_port,
            username=self.username,
            password=self.password,
            workdir=self.workdir,
        )

    def start(self, timeout=20):
        if not kannel_installed():
            raise RuntimeError(
                "Kannel is not installed: run scripts/ensure-kannel.sh "
                "(apt-get install kannel)"
            )
        (self.workdir / "spool").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "kannel.conf"
        config.write_text(self.config_text())
        self.start_bearerbox(config, timeout)
        self.start_smsbox(config, timeout)
        return self

    def start_bearerbox(self, config=None, timeout=20):
        config = config or self.workdir / "kannel.conf"
        self._spawn("bearerbox", BEARERBOX, config, self.smsbox_port, timeout)

    def start_smsbox(self, config=None, timeout=20):
        """smsbox alone: it is the HTTP face, so stopping it is "the gateway
        is down" for the platform while bearerbox keeps its queue."""
        config = config or self.workdir / "kannel.conf"
        self._spawn("smsbox", SMSBOX, config, self.sendsms_port, timeout)

    def _spawn(self, name, binary, config, port, timeout):
        log = open(self.workdir / f"{name}.out", "ab")
        process = subprocess.Popen(
            [binary, str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        process.box_name = name
        self.processes.append(process)
        deadline = time.monotonic() + timeout
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Kannel {name} did not listen on :{port}; see "
                    f"{self.workdir}/{name}.out and {name}.log"
                )
            time.sleep(0.1)

    def stop_box(self, name):
        for process in [p for p in self.processes if p.box_name == name]:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            self.processes.remove(process)

    def stop(self, keep_files=False):
        for name in ("smsbox", "bearerbox"):
            self.stop_box(name)
        if not keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)
