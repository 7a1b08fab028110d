"""SMS pumping defence by conversion. Pure: no broker, no database.

An attacker pumping SMS (toll fraud) sends codes to sequential numbers of
one number segment from rotating addresses and never verifies one; a real
burst (a whole school registering on the first day of term) verifies most
of its codes within a minute. Volume alone cannot tell them apart; the
share of codes verified can.

Every ``check`` the watcher (``dependencies.PumpingWatch``) tallies the SMS
codes of the last ``window`` that are older than ``grace`` (a person needs
time to type a code) by **segment** (a mainland mobile's first 7 digits,
``+861381234``; another country's code, ``+852``) and by **client network**
(IPv4 /24, IPv6 /48)::

    sent ≥ min_volume                      enough to judge at all
    and sent > surge × baseline            well above what this key usually sends
    and verified / sent < verified_share   and almost none of it verified
        ──► suspended: 5 min, doubled on every repeat within a day, ≤ 12 h;
            sends to it answer 429 sending_suspended with retry_after

A key is judged on codes issued after its last suspension ended (or was
lifted), never twice on the same codes. Thresholds: ``bench/pumping.py``
(the simulation they were chosen from) and README.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta

__all__ = [
    "PumpingSettings",
    "Figures",
    "Verdict",
    "segment_of",
    "MAINLAND_PREFIX",
    "MAINLAND_SEGMENT_CHARS",
    "network_of",
    "country_code_of",
    "tally",
    "merge_counted",
    "is_pumping",
    "judge",
    "next_level",
    "suspension_length",
    "baseline_per_window",
    "retry_after",
    "judged_window",
    "is_allowed_country",
    "settings_from",
    "DEFAULT_ALLOWED_COUNTRY_CODES",
]

# Mainland China and the Hong Kong, Macau and Taiwan codes the ID rules know.
DEFAULT_ALLOWED_COUNTRY_CODES = ("86", "852", "853", "886")
# ITU country codes are 1-3 digits; these are the 1- and 2-digit ones that
# share a first digit with longer codes (enough to split a +E.164 number).
_ONE_DIGIT = {"1", "7"}
_TWO_DIGIT = {
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44",
    "45", "46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58",
    "60", "61", "62", "63", "64", "65", "66", "81", "82", "84", "86", "90", "91",
    "92", "93", "94", "95", "98",
}  # fmt: skip


@dataclass(frozen=True)
class PumpingSettings:
    window: timedelta = timedelta(minutes=10)
    grace: timedelta = timedelta(seconds=30)
    min_volume: int = 20
    surge: float = 3.0
    verified_share: float = 0.2
    first_suspension: timedelta = timedelta(minutes=5)
    longest_suspension: timedelta = timedelta(hours=12)
    # A repeat within this long of the last suspension doubles the next.
    repeat_memory: timedelta = timedelta(hours=24)
    baseline_period: timedelta = timedelta(hours=24)
    allowed_country_codes: tuple = DEFAULT_ALLOWED_COUNTRY_CODES


def settings_from(config):
    """``PUMPING_*`` settings (seconds, counts, shares) over the defaults."""
    defaults = PumpingSettings()

    def seconds(name, default):
        raw = config.get(name)
        return timedelta(seconds=float(raw)) if raw not in (None, "") else default

    def number(name, default, kind):
        raw = config.get(name)
        return kind(raw) if raw not in (None, "") else default

    countries = config.get("SMS_ALLOWED_COUNTRY_CODES")
    if isinstance(countries, (int, str)):  # YAML reads a lone "86" as a number
        countries = str(countries).split(",")
    countries = tuple(str(c).strip().lstrip("+") for c in countries or () if str(c))
    return PumpingSettings(
        window=seconds("PUMPING_WINDOW_SECONDS", defaults.window),
        grace=seconds("PUMPING_GRACE_SECONDS", defaults.grace),
        min_volume=number("PUMPING_MIN_VOLUME", defaults.min_volume, int),
        surge=number("PUMPING_SURGE", defaults.surge, float),
        verified_share=number("PUMPING_VERIFIED_SHARE", defaults.verified_share, float),
        first_suspension=seconds(
            "PUMPING_FIRST_SUSPENSION_SECONDS", defaults.first_suspension
        ),
        longest_suspension=seconds(
            "PUMPING_LONGEST_SUSPENSION_SECONDS", defaults.longest_suspension
        ),
        allowed_country_codes=tuple(countries or defaults.allowed_country_codes),
    )


def country_code_of(phone):
    """The country code of a ``+E.164`` number (``+8613812345678`` → ``86``)."""
    digits = phone[1:] if phone.startswith("+") else phone
    if digits[:1] in _ONE_DIGIT:
        return digits[:1]
    if digits[:2] in _TWO_DIGIT:
        return digits[:2]
    return digits[:3]


# A mainland mobile's segment is its first MAINLAND_SEGMENT_CHARS characters
# ("+86" and 7 digits); the watch's SQL tally counts by the same two
# (store.WINDOW_TALLY_SQL).
MAINLAND_PREFIX = "+86"
MAINLAND_SEGMENT_CHARS = 10


def segment_of(phone):
    """``+86`` and the first 7 digits of a mainland mobile (its number
    segment, 号段 + HLR block); ``+<country code>`` for any other number."""
    country = "+" + country_code_of(phone)
    if country == MAINLAND_PREFIX:
        return phone[:MAINLAND_SEGMENT_CHARS]
    return country


def network_of(client_ip):
    """The client network a send came from: IPv4 /24, IPv6 /48; None when
    the request named no address."""
    text = (client_ip or "").strip()
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text[:64]
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@dataclass
class Figures:
    sent: int = 0
    delivered: int = 0
    verified: int = 0

    @property
    def verified_share(self):
        return self.verified / self.sent if self.sent else 1.0


@dataclass(frozen=True)
class Verdict:
    scope: str  # "segment" or "network"
    key: str
    figures: Figures
    baseline: float
    suspend_for: timedelta
    level: int
    reasons: dict = field(default_factory=dict)


def tally(rows, not_before=None):
    """``{(scope, key): Figures}`` of SMS codes ``rows`` (dicts with
    ``destination``, ``client_ip``, ``issued_at``, ``delivered``,
    ``verified``). ``not_before``: ``{(scope, key): datetime}``, the codes a
    key may be judged on start after it (its last suspension's end)."""
    not_before = not_before or {}
    figures = {}
    for row in rows:
        keys = []
        if row["destination"]:  # None: counted elsewhere (merge_counted)
            keys.append(("segment", segment_of(row["destination"])))
        network = network_of(row.get("client_ip"))
        if network is not None:
            keys.append(("network", network))
        for key in keys:
            start = not_before.get(key)
            if start is not None and row["issued_at"] <= start:
                continue
            counted = figures.setdefault(key, Figures())
            counted.sent += 1
            counted.delivered += bool(row.get("delivered"))
            counted.verified += bool(row.get("verified"))
    return figures


def merge_counted(counted_rows, figures):
    """``figures`` (``tally``'s answer for the codes the database could not
    key) with the keys it counted, ``(scope, key, sent, delivered,
    verified)`` rows, added in."""
    merged = dict(figures)
    for row in counted_rows:
        key = (row["scope"], row["key"])
        known = merged.get(key, Figures())
        merged[key] = Figures(
            known.sent + row["sent"],
            known.delivered + row["delivered"],
            known.verified + row["verified"],
        )
    return merged


def is_pumping(figures, baseline, settings):
    """Enough volume, well above the key's usual, and hardly any verified."""
    return (
        figures.sent >= settings.min_volume
        and figures.sent > settings.surge * baseline
        and figures.verified_share < settings.verified_share
    )


def suspension_length(level, settings):
    """5 minutes at the first suspension, doubled on each repeat, ≤ 12 h."""
    length = settings.first_suspension * (2 ** max(level - 1, 0))
    return min(length, settings.longest_suspension)


def next_level(previous_level, last_tripped_at, now, settings):
    """A repeat within ``repeat_memory`` of the last suspension goes one
    level up; after a quiet day a key starts again at 1."""
    if (
        previous_level
        and last_tripped_at
        and now - last_tripped_at < (settings.repeat_memory)
    ):
        return previous_level + 1
    return 1


def judge(scope, key, figures, baseline, previous, now, settings):
    """A ``Verdict`` when the key is to be suspended now, else None.
    ``baseline``: the key's mean sends per ``window`` over the baseline
    period before this window; ``previous``: its last suspension
    (``{"level", "tripped_at"}``) or None."""
    if not is_pumping(figures, baseline, settings):
        return None
    previous = previous or {}
    level = next_level(previous.get("level"), previous.get("tripped_at"), now, settings)
    return Verdict(
        scope=scope,
        key=key,
        figures=figures,
        baseline=baseline,
        suspend_for=suspension_length(level, settings),
        level=level,
        reasons={
            "min_volume": settings.min_volume,
            "surge": settings.surge,
            "verified_share_below": settings.verified_share,
        },
    )


def baseline_per_window(count_before, settings):
    """The key's mean sends per window from its count over the baseline
    period before the judged window."""
    windows = (settings.baseline_period - settings.window) / settings.window
    return count_before / windows if windows > 0 else 0.0


def retry_after(until, now):
    """Whole seconds until ``until`` (at least 1)."""
    return max(1, int((until - now).total_seconds() + 0.999))


def judged_window(now, settings):
    """``(since, until)``: the codes judged this round (old enough to have
    been verified by a person, young enough to be the current traffic)."""
    return now - settings.window, now - settings.grace


def is_allowed_country(phone, settings):
    return country_code_of(phone) in settings.allowed_country_codes
