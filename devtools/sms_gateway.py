"""The SMS path with receipts, for tests, ``make run SMS_GATEWAY=kannel``
and the bench: the SMSC simulator (``devtools.smsc``, its own process) and
Kannel bound to it over SMPP (``devtools.kannel``).

``SmsGatewayStack().start()`` → ``.verification_env(receipt_url)`` (what
the verification service is started with), ``.behave(phone, outcome, …)``,
``.taken(phone)``; ``.stop()``.
"""

import subprocess
import sys
import time

import requests
from nameko.testing.utils import find_free_port

from devtools.kannel import KannelGateway

__all__ = ["SmsGatewayStack"]


class SmsGatewayStack:
    def __init__(self, workdir=None):
        self.smpp_port, self.control_port = find_free_port(), find_free_port()
        self.control = f"http://127.0.0.1:{self.control_port}"
        self.simulator = None
        self.kannel = None
        self.workdir = workdir

    def start(self, timeout=30):
        self.simulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.smsc",
                "--smpp-port",
                str(self.smpp_port),
                "--http-port",
                str(self.control_port),
            ],
            stdout=subprocess.DEVNULL,
        )
        self._wait(lambda: self._health() is not None, timeout, "SMSC simulator")
        self.kannel = KannelGateway(self.smpp_port, workdir=self.workdir).start()
        self._wait(lambda: (self._health() or 0) >= 1, timeout, "Kannel's SMPP bind")
        return self

    def stop(self):
        if self.kannel is not None:
            self.kannel.stop()
        if self.simulator is not None:
            self.simulator.terminate()
            self.simulator.wait(10)

    def verification_env(self, receipt_url):
        return {
            "SMS_PROVIDER": "kannel",
            "KANNEL_SENDSMS_URL": self.kannel.sendsms_url,
            "KANNEL_USERNAME": self.kannel.username,
            "KANNEL_PASSWORD": self.kannel.password,
            "SMS_RECEIPT_URL": receipt_url,
        }

    # -- the simulator's control API ----------------------------------------
    def behave(self, phone, outcome="deliver", delay=0.0, repeat=1):
        answer = requests.put(
            f"{self.control}/behaviour/{phone}",
            json={"outcome": outcome, "delay": delay, "repeat": repeat},
            timeout=5,
        )
        answer.raise_for_status()

    def taken(self, phone=None):
        params = {"to": phone} if phone else {}
        return requests.get(f"{self.control}/messages", params=params, timeout=5).json()

    def _health(self):
        try:
            return requests.get(f"{self.control}/health", timeout=1).json()["bound"]
        except requests.RequestException:
            return None

    @staticmethod
    def _wait(check, timeout, what):
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up in {timeout} s")
            time.sleep(0.1)
