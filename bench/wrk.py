"""Load from ``wrk`` (C, Debian's package) as well as from the Python client:
the Python client spends ~0.8 ms of CPU per request on the same two cores
the platform runs on, so it under-reports what the platform can do; wrk
costs a fraction of that. ``make bench`` installs wrk when it is absent.

Bodies come from a small Lua script: a fixed one, or (``send_code``) a fresh
phone number and client address per request.
"""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = [
    "wrk_available",
    "run_wrk",
    "FIXED_BODY_LUA",
    "SEEDED_THREADS_LUA",
    "SEND_CODE_LUA",
    "send_code_one_network_lua",
]

FIXED_BODY_LUA = """
wrk.method = "POST"
wrk.body = "hello"
wrk.headers["Content-Type"] = "text/plain"
"""

# Each wrk thread seeds its own random sequence (one seed for all would
# repeat the same phones in every thread). Scripts that draw at random
# start with this.
SEEDED_THREADS_LUA = """
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("id", counter)
end
init = function(args)
  math.randomseed(os.time() * 1000 + id * 7919)
end
"""

# A phone no earlier request of the platform's life used: a repeat within
# the resend cooldown is a 429 (drawn at random, ~30k phones a bench run made
# one likely). 13 (the Python loads draw 18x) + the run's start second (4
# digits: runs are seconds apart) + the thread (1) + the thread's count (4).
# Needs SEEDED_THREADS_LUA.
FRESH_PHONE_LUA = """
local sent = 0
local started = os.time() % 10000
fresh_phone = function()
  sent = sent + 1
  return string.format("13%04d%d%04d", started, math.fmod(id, 10),
                       math.fmod(sent, 10000))
end
"""

# A new phone (13x…) and a new client address (2001:db8::/32) per request.
SEND_CODE_LUA = (
    SEEDED_THREADS_LUA
    + FRESH_PHONE_LUA
    + """
request = function()
  local phone = fresh_phone()
  local ip = string.format("2001:db8:%x:%x::%x", math.random(0, 65535),
                           math.random(0, 65535), math.random(1, 65535))
  local body = '{"channel": "sms", "purpose": "register", "destination": "'
               .. phone .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["X-Forwarded-For"] = ip}, body)
end
"""
)


def send_code_one_network_lua(address):
    """A fresh phone per request, every request from ``address`` (a school's
    NAT): the shared rate rows are at their hottest."""
    return (
        SEEDED_THREADS_LUA
        + FRESH_PHONE_LUA
        + """
request = function()
  local phone = fresh_phone()
  local body = '{"channel": "sms", "purpose": "register", "destination": "'
               .. phone .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["X-Forwarded-For"] = "ADDRESS"}, body)
end
""".replace("ADDRESS", address)
    )


# SCIM POST /Users: a new student per request, with a valid resident ID
# number (Nanjing, born 2010; the check character of GB 11643) to seal and
# hash on the way in. ``%(token)s``: the school's API token.
SCIM_CREATE_LUA = (
    SEEDED_THREADS_LUA
    + """
local weights = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
local checks = "10X98765432"
local made = 0
local student = "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student"
request = function()
  made = made + 1
  local first17 = string.format("3201022010%%02d%%02d%%03d", math.random(1, 12),
                                math.random(10, 28), math.random(100, 999))
  local total = 0
  for i = 1, 17 do total = total + tonumber(first17:sub(i, i)) * weights[i] end
  local check = total %% 11 + 1
  local body = '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "'
    .. student .. '"], "userName": "w' .. id .. '-' .. made .. '-'
    .. math.random(0, 999999999) .. '", "name": {"formatted": "\\\\u5f20\\\\u4e09"}, "'
    .. student .. '": {"idType": "resident_id", "idNumber": "'
    .. first17 .. checks:sub(check, check) .. '"}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/scim+json",
                                  ["Authorization"] = "Bearer %(token)s"}, body)
end
"""
)

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_available():
    return shutil.which("wrk") is not None


def _ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(number) * _UNITS[unit], 2)


def run_wrk(url, clients=32, seconds=10, lua=FIXED_BODY_LUA, threads=2):
    """``{rps, p50_ms, p99_ms, requests, non_2xx, errors}`` of one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{clients}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        Path(script.name).unlink()
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "load": "wrk",
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        # wrk prints no latency distribution when nothing completed.
        "p50_ms": _ms(latency["50"]) if "50" in latency else None,
        "p99_ms": _ms(latency["99"]) if "99" in latency else None,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
    }
