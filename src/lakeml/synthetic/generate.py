"""Synthetic Sparkify/eventsim-schema event logs whose churn follows observable behaviour.

`generate_events` simulates users day by day on the driver with numpy (this is a test-data
tool, not a Spark job), renders one JSON line per event, injects real-world dirt on top at
the configured rates and writes one `YYYY-MM-DD-events.json` file per day through the Hadoop
FileSystem API, so `output` may be a local path or any Hadoop URI. The same config and seed
always give byte-identical files.

Each user has latent traits (activity, satisfaction, paid-ness). Satisfaction drifts down
for some users, which lowers their activity and raises their thumbs down, help visits and
downgrades. The daily churn hazard is a noisy function of what a feature pipeline can see
in the last weeks (thumbs down/up, adverts, errors, friends, playlist adds, level, falling
activity, idle days), so point-in-time features predict churn well but not perfectly.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
from pyspark.sql import SparkSession

from lakeml.core.config import GenerateConfig
from lakeml.core.errors import LakemlError

DAY_MS = 86_400_000
# Days simulated before start_date (not written) so recent-weeks behaviour exists on day 0.
BURN_IN_DAYS = 28
NEW_USER_SHARE = 0.08

# page -> (method, status); eventsim answers a PUT with a 307 redirect, except for songs.
PAGES: dict[str, tuple[str, int]] = {
    "NextSong": ("PUT", 200),
    "Home": ("GET", 200),
    "Thumbs Up": ("PUT", 307),
    "Thumbs Down": ("PUT", 307),
    "Add to Playlist": ("PUT", 200),
    "Add Friend": ("PUT", 307),
    "Roll Advert": ("GET", 200),
    "Logout": ("PUT", 307),
    "Login": ("PUT", 307),
    "Settings": ("GET", 200),
    "Save Settings": ("PUT", 307),
    "Help": ("GET", 200),
    "About": ("GET", 200),
    "Upgrade": ("GET", 200),
    "Submit Upgrade": ("PUT", 307),
    "Downgrade": ("GET", 200),
    "Submit Downgrade": ("PUT", 307),
    "Error": ("GET", 404),
    "Cancel": ("PUT", 307),
    "Cancellation Confirmation": ("GET", 200),
    "Register": ("GET", 200),
    "Submit Registration": ("PUT", 307),
}
PAGE_NAMES = list(PAGES)
PAGE = {name: i for i, name in enumerate(PAGE_NAMES)}

# Pages visited between songs: (page, visits per song when free, when paid, change of the
# log-rate per unit of satisfaction, right after a song). Rates follow Sparkify's mix.
INTERLEAVED: tuple[tuple[str, float, float, float, bool], ...] = (
    ("Home", 0.035, 0.035, 0.0, False),
    ("Thumbs Up", 0.052, 0.056, 0.40, True),
    ("Thumbs Down", 0.011, 0.010, -0.60, True),
    ("Add to Playlist", 0.027, 0.029, 0.30, True),
    ("Add Friend", 0.018, 0.019, 0.35, False),
    ("Roll Advert", 0.055, 0.002, 0.0, False),
    ("Settings", 0.0065, 0.0065, 0.0, False),
    ("Save Settings", 0.0013, 0.0013, 0.0, False),
    ("Help", 0.005, 0.005, -0.40, False),
    ("About", 0.0025, 0.0025, 0.0, False),
    ("Upgrade", 0.004, 0.0, 0.20, False),
    ("Downgrade", 0.0, 0.009, -0.30, False),
    ("Error", 0.0011, 0.0011, 0.0, False),
)
_IL = {name: i for i, (name, *_) in enumerate(INTERLEAVED)}
REQUIRED_KEYS = ("ts", "page", "sessionId", "itemInSession", "auth", "level")
KEYS = (
    "artist", "auth", "firstName", "gender", "itemInSession", "lastName", "length", "level",
    "location", "method", "page", "registration", "sessionId", "song", "status", "ts",
    "userAgent", "userId",
)  # fmt: skip
_LINE = "".join(
    ["{", ",".join(f'"{k}":%s' for k in KEYS), "}"]
)  # every value is pre-rendered JSON text


def _words(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


# Catalogue and people vocabularies; a few accents and quotes exercise JSON escaping.
_ADJ = _words(
    "Blue Black Golden Silent Electric Broken Wild Lonely Crazy Sweet Cold Burning Velvet "
    "Midnight Northern Lost Bright Hollow Neon Little Last Secret Frozen Dancing Savage "
    "Royal Paper Glass Iron Dark Young Endless Restless Quiet Holy Lucky Rainy Sunny "
    "Strange Señorita Café Naïve"
)
_NOUN = _words(
    "Heart Fire River Moon Sun Night Road Dream City Rain Love Sky Ocean Ghost Star Shadow "
    "Garden Train Mirror Thunder Angel Heaven Summer Winter Island Desert Storm Light Echo "
    "Memory Kingdom Diamond Stranger Highway Window Horizon Wolves Lions Tigers Children "
    "Kings Sisters Brothers Machines Rebels Saints Pilots Strangers Dreamers Birds"
)
_VERB = _words("Hold Take Save Kiss Call Leave Find Show Tell Love Follow Wake Carry Free")
_FIRST_M = _words(
    "James John Robert Michael William David Richard Joseph Thomas Charles Christopher "
    "Daniel Matthew Anthony Mark Steven Paul Andrew Joshua Kevin Brian George Ethan Jacob "
    "Logan Lucas Mason Noah Owen Ryan Tyler Colin Micah Ashton Spencer Elijah José"
)
_FIRST_F = _words(
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Nancy Lisa "
    "Emily Ashley Michelle Amanda Melissa Stephanie Rebecca Laura Olivia Emma Ava Sophia "
    "Isabella Mia Chloe Madison Alexis Lily Brooke Lakyla Faith Zoë Renée"
)
_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell "
    "Carter Roberts Freeman Porter O'Connor Núñez Reed Cook Morgan Bell Murphy Bailey "
    "Cooper Richardson Cox Howard Ward"
)
_CITIES = _words(
    "New York, NY|Los Angeles, CA|Chicago, IL|Houston, TX|Phoenix, AZ|Philadelphia, PA|"
    "San Antonio, TX|San Diego, CA|Dallas, TX|San Jose, CA|Austin, TX|Jacksonville, FL|"
    "Columbus, OH|Charlotte, NC|Indianapolis, IN|San Francisco, CA|Seattle, WA|Denver, CO|"
    "Boston, MA|Nashville, TN|Detroit, MI|Portland, OR|Las Vegas, NV|Memphis, TN|"
    "Louisville, KY|Baltimore, MD|Milwaukee, WI|Albuquerque, NM|Tucson, AZ|Fresno, CA|"
    "Sacramento, CA|Kansas City, MO|Atlanta, GA|Miami, FL|Raleigh, NC|Omaha, NE|"
    "Minneapolis, MN|Tulsa, OK|Cleveland, OH|New Orleans, LA|Tampa, FL|Pittsburgh, PA|"
    "Cincinnati, OH|St. Louis, MO|Orlando, FL|Salt Lake City, UT|Richmond, VA|"
    "Birmingham, AL|Buffalo, NY|Hartford, CT|Bakersfield, CA|Boise, ID|Anchorage, AK|"
    "Honolulu, HI|Des Moines, IA|Spokane, WA",
    sep="|",
)
_AGENTS = (
    '"Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) '
    'Chrome/36.0.1985.143 Safari/537.36"',
    "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/69.0.3497.100 Safari/537.36",
    "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; WOW64; Trident/6.0)",
    '"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.77.4 (KHTML, like Gecko) '
    'Version/7.0.5 Safari/537.77.4"',
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.13; rv:62.0) Gecko/20100101 Firefox/62.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_6) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/69.0.3497.100 Safari/537.36",
    '"Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 '
    '(KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53"',
    "Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/12.0 Mobile/15E148 Safari/604.1",
    '"Mozilla/5.0 (iPad; CPU OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) '
    'Version/7.0 Mobile/11D257 Safari/9537.53"',
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/69.0.3497.100 Safari/537.36",
)
_AGENT_WEIGHTS = (16, 9, 14, 5, 12, 4, 9, 8, 8, 4, 5, 6)


def generate_events(spark: SparkSession, cfg: GenerateConfig, output: str) -> dict[str, int]:
    """Write `cfg.days` daily JSON-lines files of synthetic events under `output`; return stats.

    Stats: files, lines (every line written), events (clean ones), users, churned_users and
    the count of each kind of dirty line (logged_out, duplicates, malformed, missing_field,
    bad_value). Silver keeps `lines - logged_out - malformed - missing_field - bad_value -
    duplicates` rows, which equals `events`.
    """
    files, stats = render_files(cfg)
    _write_files(spark, output, files)
    return stats


def render_files(cfg: GenerateConfig) -> tuple[dict[str, bytes], dict[str, int]]:
    """The day files (name -> bytes) and stats of `generate_events`, without touching storage."""
    start_date = _validate(cfg)
    start_ms = (start_date - dt.date(1970, 1, 1)).days * DAY_MS
    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    behaviour, timing, catalogue_rng, dirt_rng = (np.random.default_rng(s) for s in seeds)
    catalogue = _Catalogue.build(catalogue_rng)
    users = _Users.draw(behaviour, cfg.users, cfg.days, start_ms)
    sessions = _simulate(behaviour, users, cfg.days, start_date.weekday())
    events = _expand(timing, catalogue, users, sessions, cfg.days, start_ms)
    return _render(dirt_rng, cfg, catalogue, users, events, start_date)


def _validate(cfg: GenerateConfig) -> dt.date:
    """Check the config and return its start date."""
    if cfg.users < 1:
        raise LakemlError(f"generate.users must be at least 1, got {cfg.users}")
    if cfg.days < 1:
        raise LakemlError(f"generate.days must be at least 1, got {cfg.days}")
    try:
        start = dt.datetime.strptime(cfg.start_date, "%Y-%m-%d").date()
    except ValueError:
        raise LakemlError(
            f"generate.start_date {cfg.start_date!r} is not a date; write it as YYYY-MM-DD"
        ) from None
    rates = {name: float(rate) for name, rate in vars(cfg.dirt).items()}
    for name, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise LakemlError(f"generate.dirt.{name} must be a fraction in [0, 1], got {rate}")
    copied = sum(v for k, v in rates.items() if k != "logged_out_rate")
    if copied > 1.0:
        raise LakemlError(
            "generate.dirt rates other than logged_out_rate must sum to at most 1 "
            f"(each dirty copy needs its own clean event), got {copied}"
        )
    return start


# ---------------------------------------------------------------------------------------
# Catalogue and users
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalogue:
    """Songs with artist, length and Zipf-like popularity, pre-rendered as JSON text."""

    artist_json: np.ndarray  # per song
    song_json: np.ndarray
    length_json: np.ndarray
    length_s: np.ndarray
    cdf: np.ndarray

    @staticmethod
    def build(rng: np.random.Generator, n_artists: int = 1500, n_songs: int = 6000) -> _Catalogue:
        first = _FIRST_M + _FIRST_F
        pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
        artist_forms = (
            lambda: f"The {pick(_ADJ)} {pick(_NOUN)}",
            lambda: f"{pick(first)} {pick(_LAST)}",
            lambda: f"{pick(_NOUN)} {pick(_NOUN)}",
            lambda: f"DJ {pick(_ADJ)}",
            lambda: f"{pick(_ADJ)} {pick(_NOUN)}",
            lambda: f"{pick(first)} {pick(_LAST)} & The {pick(_NOUN)}",
        )
        song_forms = (
            lambda: f"{pick(_ADJ)} {pick(_NOUN)}",
            lambda: f"{pick(_NOUN)} of the {pick(_NOUN)}",
            lambda: f"{pick(_VERB)} Me",
            lambda: f"{pick(_NOUN)}",
            lambda: f"{pick(_VERB)} My {pick(_NOUN)}",
            lambda: f"{pick(_ADJ)} {pick(_NOUN)} (Remix)",
            lambda: f"Don't {pick(_VERB)} the {pick(_NOUN)}",
            lambda: f"{pick(_NOUN)} in the {pick(_ADJ)} {pick(_NOUN)}",
        )
        artists: list[str] = []
        seen: set[str] = set()
        while len(artists) < n_artists:
            name = artist_forms[int(rng.integers(len(artist_forms)))]()
            if name not in seen:
                seen.add(name)
                artists.append(name)
        titles = [song_forms[int(rng.integers(len(song_forms)))]() for _ in range(n_songs)]
        # Popular artists have more songs, and popular songs are played far more (Zipf).
        artist_weight = 1.0 / np.arange(1, n_artists + 1) ** 0.8
        song_artist = rng.choice(n_artists, size=n_songs, p=artist_weight / artist_weight.sum())
        length = np.clip(rng.lognormal(np.log(235.0), 0.28, n_songs), 30.0, 1200.0).round(5)
        popularity = 1.0 / np.arange(1, n_songs + 1) ** 1.05
        cdf = np.cumsum(popularity) / popularity.sum()
        return _Catalogue(
            artist_json=np.array([_js(artists[a]) for a in song_artist], dtype=object),
            song_json=np.array([_js(t) for t in titles], dtype=object),
            length_json=np.array([repr(float(x)) for x in length], dtype=object),
            length_s=length,
            cdf=cdf,
        )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.cdf) - 1)


@dataclass(frozen=True)
class _Users:
    """Per-user identity (as JSON text) and latent traits, as arrays indexed by user."""

    user_id: list[str]
    first_json: np.ndarray
    last_json: np.ndarray
    gender_json: np.ndarray
    location_json: np.ndarray
    agent_json: np.ndarray
    reg_day: np.ndarray  # first day with events for new users; -BURN_IN_DAYS otherwise
    is_new: np.ndarray
    registration_ms: np.ndarray  # users already registered before start_date
    activity: np.ndarray  # sessions per day at neutral satisfaction
    songs_mean: np.ndarray  # songs per session
    satisfaction: np.ndarray
    drift: np.ndarray  # satisfaction change per day after drift_onset
    drift_onset: np.ndarray
    paid_trait: np.ndarray
    social: np.ndarray
    glitch: np.ndarray  # how often the app fails for this user (device, network)
    hour: np.ndarray  # preferred listening hour
    frailty: np.ndarray  # unobserved churn propensity

    @staticmethod
    def draw(rng: np.random.Generator, n: int, days: int, start_ms: int) -> _Users:
        is_new = (rng.random(n) < NEW_USER_SHARE) & (days >= 2)
        reg_day = np.where(is_new, rng.integers(0, max(1, int(days * 0.75)), n), -BURN_IN_DAYS)
        n_existing = int((~is_new).sum())
        ids = np.empty(n, dtype=object)
        ids[~is_new] = [str(i) for i in range(1, n_existing + 1)]
        ids[is_new] = [str(100001 + i) for i in range(n - n_existing)]
        male = rng.random(n) < 0.52
        first = np.where(
            male,
            np.array(_FIRST_M, dtype=object)[rng.integers(len(_FIRST_M), size=n)],
            np.array(_FIRST_F, dtype=object)[rng.integers(len(_FIRST_F), size=n)],
        )
        city_weight = 1.0 / np.arange(1, len(_CITIES) + 1) ** 0.7
        agent_weight = np.array(_AGENT_WEIGHTS, dtype=float)
        registered_days_ago = rng.uniform(1.0, 250.0, n)
        drifting = rng.random(n) < DRIFT_SHARE
        return _Users(
            user_id=list(ids),
            first_json=np.array([_js(x) for x in first], dtype=object),
            last_json=np.array([_js(_LAST[i]) for i in rng.integers(len(_LAST), size=n)]),
            gender_json=np.where(male, '"M"', '"F"').astype(object),
            location_json=np.array(
                [
                    _js(_CITIES[i])
                    for i in rng.choice(len(_CITIES), n, p=city_weight / city_weight.sum())
                ]
            ),
            agent_json=np.array(
                [
                    _js(_AGENTS[i])
                    for i in rng.choice(len(_AGENTS), n, p=agent_weight / agent_weight.sum())
                ]
            ),
            reg_day=reg_day,
            is_new=is_new,
            registration_ms=(start_ms - registered_days_ago * DAY_MS).astype(np.int64),
            activity=rng.lognormal(np.log(0.55), 0.55, n),
            songs_mean=rng.lognormal(np.log(19.0), 0.35, n),
            satisfaction=rng.normal(0.0, 0.8, n),
            drift=np.where(drifting, -rng.uniform(*DRIFT_RANGE, n), rng.normal(0.0, 0.004, n)),
            drift_onset=rng.uniform(-10.0, days * 0.8, n),
            paid_trait=rng.normal(0.0, 1.0, n),
            social=rng.lognormal(0.0, 0.4, n),
            glitch=rng.lognormal(0.0, 0.7, n),
            hour=rng.choice([9.0, 13.0, 17.0, 20.0, 22.0], n, p=[0.15, 0.2, 0.2, 0.3, 0.15]),
            frailty=rng.normal(0.0, FRAILTY_SD, n),
        )


def _js(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------------------
# Day-by-day behaviour: sessions, level changes and churn
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sessions:
    """Planned sessions of the written period, one row each."""

    user: np.ndarray
    planned_ms: np.ndarray  # offset from start_date
    songs: np.ndarray
    pages: np.ndarray  # (sessions, len(INTERLEAVED)) visit counts
    paid: np.ndarray  # level at session start
    change: np.ndarray  # 0 none, 1 upgrade, 2 downgrade during the session
    cancel: np.ndarray
    home_first: np.ndarray
    logout_last: np.ndarray


# Churn hazard: logit = HAZARD_BASE + sum(weight * observable) + frailty + daily noise; the
# unobserved parts keep point-in-time features from predicting churn perfectly.
HAZARD_BASE = -8.1
HAZARD_WEIGHTS = {
    "thumbs_down_per_100": 1.0,
    "thumbs_up_per_100": -0.12,
    "playlist_per_100": -0.15,
    "adverts_per_100": 0.06,
    "trouble": 0.5,
    "friends": -0.6,
    "trend": -1.5,
    "idle": 0.5,
    "paid": -0.5,
}
FRAILTY_SD = 0.25
HAZARD_NOISE_SD = 0.2
# Satisfaction: how strongly it drives the number of sessions, and its day-to-day swings.
ACTIVITY_ELASTICITY = 0.45
MOOD_SD = 0.3
DRIFT_SHARE, DRIFT_RANGE = 0.35, (0.05, 0.15)
SESSION_SONGS_SHAPE = 4.0  # negative binomial shape: smaller is burstier
_OBSERVED = ("songs", "thumbs_up", "thumbs_down", "playlist", "friends", "adverts", "trouble")


def _hazard_logit(
    history: dict[str, np.ndarray], t: int, paid: np.ndarray, last_day: np.ndarray
) -> np.ndarray:
    """Churn log-odds on day index t from the observable behaviour of the weeks before it."""

    def recent(name: str, days: int, skip: int = 0) -> np.ndarray:
        return history[name][:, max(0, t - days) : t - skip].sum(axis=1)

    songs14 = recent("songs", 14)

    def per_100_songs(name: str, typical: float) -> np.ndarray:
        return 100.0 * (recent(name, 14) + typical * 30.0) / (songs14 + 30.0)

    trend = np.log((songs14 + 10.0) / (recent("songs", 28, skip=14) + 10.0))
    idle = np.log1p(t - last_day)
    w = HAZARD_WEIGHTS
    return (
        HAZARD_BASE
        + w["thumbs_down_per_100"] * (per_100_songs("thumbs_down", 0.011) - 1.1)
        + w["thumbs_up_per_100"] * (per_100_songs("thumbs_up", 0.054) - 5.4)
        + w["playlist_per_100"] * (per_100_songs("playlist", 0.028) - 2.8)
        + w["adverts_per_100"] * per_100_songs("adverts", 0.03)
        + w["trouble"] * np.log1p(recent("trouble", 14))
        + w["friends"] * np.log1p(recent("friends", 14))
        + w["trend"] * np.clip(trend, -2.5, 1.0)
        + w["idle"] * idle
        + w["paid"] * paid
    )


def _simulate(rng: np.random.Generator, users: _Users, days: int, weekday: int) -> _Sessions:
    """Simulate burn-in plus `days` days (day 0 is a `weekday`, Monday 0); return the
    sessions of the written days."""
    n = len(users.user_id)
    total = BURN_IN_DAYS + days
    history = {name: np.zeros((n, total)) for name in _OBSERVED}
    paid = (rng.random(n) < _sigmoid(users.paid_trait - 0.2)) & ~users.is_new
    alive = np.ones(n, dtype=bool)
    last_day = np.full(n, -1)  # index into history of the last day with a session
    mood = np.zeros(n)  # short-term, autocorrelated swings in satisfaction
    free_rate = np.array([r[1] for r in INTERLEAVED])
    paid_rate = np.array([r[2] for r in INTERLEAVED])
    sensitivity = np.array([r[3] for r in INTERLEAVED])
    weekday_factor = np.array([1.0, 1.0, 1.0, 1.0, 1.05, 0.9, 0.85])
    kept: list[dict[str, np.ndarray]] = []

    for t in range(total):
        day = t - BURN_IN_DAYS
        mood = 0.8 * mood + rng.normal(0.0, MOOD_SD, n)
        satisfaction = (
            users.satisfaction + users.drift * np.maximum(0.0, day - users.drift_onset) + mood
        )
        sat = np.clip(satisfaction, -4.0, 3.0)
        present = alive & (users.reg_day <= day)
        rate = (
            users.activity * np.exp(ACTIVITY_ELASTICITY * sat) * weekday_factor[(weekday + day) % 7]
        )
        count = np.where(present, rng.poisson(rate), 0)
        count[users.is_new & (users.reg_day == day)] = np.maximum(
            count[users.is_new & (users.reg_day == day)], 1
        )

        # Churn is decided on the weeks up to yesterday; churners cancel in today's last session.
        in_window = present & (last_day >= 0) & (day >= 0)
        hazard = _sigmoid(
            _hazard_logit(history, t, paid, np.where(last_day >= 0, last_day, t))
            + users.frailty
            + rng.normal(0.0, HAZARD_NOISE_SD, n)
        )
        churn = in_window & (rng.random(n) < hazard)
        # Churners with no session today come back once to cancel.
        count[churn & (count == 0)] = 1

        user = np.repeat(np.arange(n), count)
        m = len(user)
        hour = np.where(
            rng.random(m) < 0.7,
            rng.normal(users.hour[user], 2.5),
            rng.uniform(0.0, 24.0, m),
        )
        planned = day * DAY_MS + (np.clip(hour % 24.0, 0.2, 23.8) * 3_600_000).astype(np.int64)
        order = np.lexsort((planned, user))
        user, planned = user[order], planned[order]
        last = np.ones(m, dtype=bool)
        last[:-1] = user[:-1] != user[1:]

        mean_songs = users.songs_mean[user] * np.exp(0.15 * sat[user])
        shape = SESSION_SONGS_SHAPE
        songs = rng.negative_binomial(shape, shape / (shape + mean_songs))
        is_cancel = last & churn[user]
        songs = np.where(is_cancel & (count[user] == 1) & (rng.random(m) < 0.5), songs // 4, songs)
        session_paid = paid[user]
        per_song = np.where(session_paid[:, None], paid_rate, free_rate) * np.exp(
            np.outer(sat[user], sensitivity)
        )
        per_song[:, _IL["Add Friend"]] *= users.social[user]
        per_song[:, _IL["Error"]] *= users.glitch[user]
        pages = rng.poisson(per_song * songs[:, None])

        # Level changes in the day's last session of users who stay.
        stays = last & ~churn[user]
        upgrade = (
            stays
            & ~session_paid
            & (rng.random(m) < _sigmoid(-4.3 + 0.7 * users.paid_trait[user] + 0.3 * sat[user]))
        )
        downgrade = (
            stays
            & session_paid
            & (rng.random(m) < _sigmoid(-5.6 - 0.5 * users.paid_trait[user] - 0.6 * sat[user]))
        )
        change = np.where(upgrade, 1, np.where(downgrade, 2, 0))

        for name, values in (
            ("songs", songs),
            ("thumbs_up", pages[:, _IL["Thumbs Up"]]),
            ("thumbs_down", pages[:, _IL["Thumbs Down"]]),
            ("playlist", pages[:, _IL["Add to Playlist"]]),
            ("friends", pages[:, _IL["Add Friend"]]),
            ("adverts", pages[:, _IL["Roll Advert"]]),
            ("trouble", pages[:, _IL["Error"]] + pages[:, _IL["Help"]]),
        ):
            history[name][:, t] = np.bincount(user, weights=values, minlength=n)
        last_day[count > 0] = t
        paid = np.where(np.bincount(user, weights=upgrade, minlength=n) > 0, True, paid)
        paid = np.where(np.bincount(user, weights=downgrade, minlength=n) > 0, False, paid)
        alive &= ~churn

        if day >= 0 and m:
            kept.append(
                {
                    "user": user,
                    "planned_ms": planned,
                    "songs": songs,
                    "pages": pages,
                    "paid": session_paid,
                    "change": change,
                    "cancel": is_cancel,
                    "home_first": rng.random(m) < 0.75,
                    "logout_last": ~is_cancel & (rng.random(m) < 0.45),
                }
            )
    if not kept:  # nobody came: one empty day keeps the shapes and dtypes
        none = np.zeros(0, dtype=np.int64)
        no = none.astype(bool)
        kept.append(
            dict(
                user=none,
                planned_ms=none,
                songs=none,
                pages=np.zeros((0, len(INTERLEAVED)), dtype=np.int64),
                paid=no,
                change=none,
                cancel=no,
                home_first=no,
                logout_last=no,
            )
        )
    return _Sessions(**{k: np.concatenate([d[k] for d in kept]) for k in kept[0]})


# ---------------------------------------------------------------------------------------
# Sessions -> timed events
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Events:
    """Clean events (one row each, grouped by session in order) and per-user registration."""

    user: np.ndarray
    session_id: np.ndarray
    item: np.ndarray
    page: np.ndarray
    song: np.ndarray  # catalogue index, -1 when not NextSong
    ts: np.ndarray  # epoch ms
    paid: np.ndarray
    registration_ms: np.ndarray  # per user


def _expand(
    rng: np.random.Generator,
    catalogue: _Catalogue,
    users: _Users,
    sessions: _Sessions,
    days: int,
    start_ms: int,
) -> _Events:
    """Lay out each session's pages in order, time them and resolve overlapping sessions."""
    s = sessions
    n_sessions = len(s.user)
    idx = np.arange(n_sessions)
    n_il = len(INTERLEAVED)
    home = s.home_first | (s.songs == 0)
    change_at = np.where(
        s.songs > 0, np.floor(rng.random(n_sessions) * s.songs) + 0.6, -0.5
    )  # between songs, or right after Home in a songless session

    song_sess = np.repeat(idx, s.songs)
    first_song = np.repeat(np.cumsum(s.songs) - s.songs, s.songs)
    song_key = (np.arange(len(song_sess)) - first_song).astype(float)

    flat = s.pages.ravel()
    il_sess = np.repeat(np.repeat(idx, n_il), flat)
    il_type = np.repeat(np.tile(np.arange(n_il), n_sessions), flat)
    attached = np.array([r[4] for r in INTERLEAVED])[il_type]
    slot = np.floor(rng.random(len(il_sess)) * s.songs[il_sess])
    within = np.where(
        attached, 0.05 + 0.1 * rng.random(len(il_sess)), 0.2 + 0.79 * rng.random(len(il_sess))
    )
    il_page = np.array([PAGE[r[0]] for r in INTERLEAVED])[il_type]

    changed = s.change > 0
    cancel = s.cancel
    parts = [
        (song_sess, song_key, np.full(len(song_sess), PAGE["NextSong"])),
        (il_sess, slot + within, il_page),
        (idx[home], np.full(int(home.sum()), -1.0), np.full(int(home.sum()), PAGE["Home"])),
        (
            idx[changed],
            change_at[changed],
            np.where(s.change[changed] == 1, PAGE["Upgrade"], PAGE["Downgrade"]),
        ),
        (
            idx[changed],
            change_at[changed] + 0.001,
            np.where(s.change[changed] == 1, PAGE["Submit Upgrade"], PAGE["Submit Downgrade"]),
        ),
        (
            idx[s.logout_last],
            s.songs[s.logout_last] + 1.0,
            np.full(int(s.logout_last.sum()), PAGE["Logout"]),
        ),
        (idx[cancel], s.songs[cancel] + 2.0, np.full(int(cancel.sum()), PAGE["Cancel"])),
        (
            idx[cancel],
            s.songs[cancel] + 3.0,
            np.full(int(cancel.sum()), PAGE["Cancellation Confirmation"]),
        ),
    ]
    sess = np.concatenate([p[0] for p in parts])
    key = np.concatenate([p[1] for p in parts])
    page = np.concatenate([p[2] for p in parts])
    order = np.lexsort((key, sess))
    sess, key, page = sess[order], key[order], page[order]
    n = len(sess)

    is_song = page == PAGE["NextSong"]
    song = np.full(n, -1)
    song[is_song] = catalogue.sample(rng, int(is_song.sum()))
    gap_s = np.where(
        is_song, catalogue.length_s[song], 1.0 + np.minimum(rng.exponential(9.0, n), 90.0)
    )
    gap_ms = np.round(gap_s * 1000.0).astype(np.int64)
    rows_per = np.bincount(sess, minlength=n_sessions)
    first_row = np.cumsum(rows_per) - rows_per
    elapsed = np.cumsum(gap_ms) - gap_ms  # before each row, since the first row overall
    offset = elapsed - elapsed[first_row][sess]
    item = np.arange(n) - first_row[sess]
    duration = offset[first_row + rows_per - 1]  # every session has at least one row

    # A user cannot be in two sessions at once: push a session back past the previous one.
    start = s.planned_ms.copy()
    pause = (300_000 + rng.exponential(1_500_000, n_sessions)).astype(np.int64)
    prev_user, prev_end = -1, 0
    for i in np.lexsort((s.planned_ms, s.user)).tolist():
        u = int(s.user[i])
        if u == prev_user:
            start[i] = max(int(start[i]), prev_end + int(pause[i]))
        prev_user, prev_end = u, int(start[i] + duration[i])

    ts = start_ms + start[sess] + offset
    paid = s.paid[sess] ^ (changed[sess] & (key > change_at[sess] + 0.0015))
    keep = ts < start_ms + days * DAY_MS  # the extract ends at midnight after the last day
    # Session ids count up in order of start; sessions pushed past the end leave no gaps.
    session_rank = np.argsort(np.lexsort((s.user, start)))
    _, session_id = np.unique(session_rank[sess][keep], return_inverse=True)
    user = s.user[sess]
    user, page, song, ts, paid, item = (a[keep] for a in (user, page, song, ts, paid, item))
    registration = users.registration_ms.copy()
    first_ts = np.full(len(users.user_id), np.iinfo(np.int64).max)
    np.minimum.at(first_ts, user, ts)
    joined = users.is_new & (first_ts < np.iinfo(np.int64).max)
    # New users submit the registration form moments before their first session.
    registration[joined] = first_ts[joined] - rng.integers(5_000, 60_000, int(joined.sum()))
    never = users.is_new & ~joined
    registration[never] = start_ms + users.reg_day[never] * DAY_MS
    return _Events(
        user=user,
        session_id=session_id + 1,
        item=item,
        page=page,
        song=song,
        ts=ts,
        paid=paid,
        registration_ms=registration,
    )


# ---------------------------------------------------------------------------------------
# Events -> JSON lines, with dirt on top
# ---------------------------------------------------------------------------------------

_NULL_USER = ("null",) * 5  # firstName, gender, lastName, location, userAgent


def _render(
    rng: np.random.Generator,
    cfg: GenerateConfig,
    catalogue: _Catalogue,
    users: _Users,
    events: _Events,
    start_date: dt.date,
) -> tuple[dict[str, bytes], dict[str, int]]:
    """Render clean lines, add each kind of dirty line, and split them into day files."""
    e = events
    n = len(e.ts)
    start_ms = (start_date - dt.date(1970, 1, 1)).days * DAY_MS
    is_song = e.page == PAGE["NextSong"]
    song = np.where(is_song, e.song, 0)
    page_json = np.array([_js(p) for p in PAGE_NAMES], dtype=object)
    method_json = np.array([_js(PAGES[p][0]) for p in PAGE_NAMES], dtype=object)
    status = np.array([PAGES[p][1] for p in PAGE_NAMES])
    user_id_json = np.array([_js(u) for u in users.user_id], dtype=object)
    confirm = e.page == PAGE["Cancellation Confirmation"]
    columns = (
        np.where(is_song, catalogue.artist_json[song], "null"),
        np.where(confirm, '"Cancelled"', '"Logged In"'),
        users.first_json[e.user],
        users.gender_json[e.user],
        e.item.tolist(),
        users.last_json[e.user],
        np.where(is_song, catalogue.length_json[song], "null"),
        np.where(e.paid, '"paid"', '"free"'),
        users.location_json[e.user],
        method_json[e.page],
        page_json[e.page],
        e.registration_ms[e.user].tolist(),
        e.session_id.tolist(),
        np.where(is_song, catalogue.song_json[song], "null"),
        status[e.page].tolist(),
        e.ts.tolist(),
        users.agent_json[e.user],
        user_id_json[e.user],
    )
    lines = [_LINE % row for row in zip(*columns, strict=True)]

    # Every line carries (ts to sort and file it by, rank after its source line, text).
    out: list[tuple[int, int, int, str]] = [
        (t, 0, i, line) for i, (t, line) in enumerate(zip(e.ts.tolist(), lines, strict=True))
    ]
    rates = cfg.dirt
    counts = {
        "duplicates": round(rates.duplicate_rate * n),
        "malformed": round(rates.malformed_rate * n),
        "missing_field": round(rates.missing_field_rate * n),
        "bad_value": round(rates.bad_value_rate * n),
    }
    sources = rng.permutation(n)
    at = 0
    for rank, (kind, count) in enumerate(counts.items(), start=1):
        for i in sorted(sources[at : at + count].tolist()):
            out.append((int(e.ts[i]), rank, i, _corrupt(rng, kind, lines[i])))
        at += count

    end_ms = start_ms + cfg.days * DAY_MS
    logged_out = [
        row
        for row in _logged_out_lines(
            rng, round(rates.logged_out_rate * n), e, users, start_ms, end_ms
        )
        if start_ms <= row[0] < end_ms
    ]
    out.extend(logged_out)
    out.sort(key=lambda row: row[:3])

    by_day: list[list[str]] = [[] for _ in range(cfg.days)]
    for ts, _, _, line in out:
        by_day[(ts - start_ms) // DAY_MS].append(line)
    files = {
        f"{start_date + dt.timedelta(days=d)}-events.json": "".join(f"{x}\n" for x in day).encode()
        for d, day in enumerate(by_day)
    }
    stats = {
        "files": len(files),
        "lines": len(out),
        "events": n,
        "users": len(np.unique(e.user)),
        "churned_users": len(np.unique(e.user[confirm])),
        "logged_out": len(logged_out),
        **counts,
    }
    return files, stats


def _corrupt(rng: np.random.Generator, kind: str, line: str) -> str:
    """A dirty variant of a clean line: an exact copy, broken JSON, a missing key or a bad value."""
    if kind == "duplicates":
        return line
    if kind == "malformed":
        mode = int(rng.integers(3))
        if mode == 0:  # the writer died mid-line
            broken = line[: int(rng.integers(1, len(line) - 1))]
        elif mode == 1:  # a lost colon
            colons = [i for i in range(len(line) - 1) if line[i : i + 2] == '":']
            at = colons[int(rng.integers(len(colons)))]
            broken = line[: at + 1] + line[at + 2 :]
        else:  # a record cut at its closing brace and glued to garbage
            broken = line[:-1] + ',"\x7f\x7f'
        try:
            json.loads(broken)
        except ValueError:
            return broken
        return line[: len(line) // 2]
    event = json.loads(line)
    if kind == "missing_field":
        del event[REQUIRED_KEYS[int(rng.integers(len(REQUIRED_KEYS)))]]
    else:
        modes = ["ts_before_registration", "ts_text", "session_text", "item_text"]
        if event["page"] == "NextSong":
            modes.append("negative_length")
        mode = modes[int(rng.integers(len(modes)))]
        if mode == "negative_length":
            event["length"] = -event["length"]
        elif mode == "ts_before_registration":
            event["ts"] = event["registration"] - int(rng.integers(3_600_000, 30 * DAY_MS))
        elif mode == "ts_text":
            event["ts"] = ["yesterday", "NaT", "2018-10-0?"][int(rng.integers(3))]
        elif mode == "session_text":
            event["sessionId"] = ["abc", "x17", "#N/A"][int(rng.integers(3))]
        else:
            event["itemInSession"] = ["first", "-", "one"][int(rng.integers(3))]
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def _anonymous_line(auth: str, page: int, level: str, session_id: int, item: int, ts: int) -> str:
    """An eventsim line of a visitor who is not logged in: userId "" and no user fields."""
    name = PAGE_NAMES[page]
    method, status = PAGES[name]
    first, gender, last, location, agent = _NULL_USER
    return _LINE % (
        "null", _js(auth), first, gender, item, last, "null", _js(level), location,
        _js(method), _js(name), "null", session_id, "null", status, ts, agent, '""',
    )  # fmt: skip


def _logged_out_lines(
    rng: np.random.Generator,
    budget: int,
    e: _Events,
    users: _Users,
    start_ms: int,
    end_ms: int,
) -> list[tuple[int, int, int, str]]:
    """`budget` lines with userId "": new users' sign-up pages, guests browsing, and pages
    seen after logging out at the end of a session."""
    rows: list[tuple[int, int, int, str]] = []
    next_session = int(e.session_id.max()) + 1 if len(e.session_id) else 1
    seq = len(e.ts)  # sorts after clean lines with the same ts

    def add(ts: int, line: str) -> None:
        nonlocal seq
        rows.append((ts, 0, seq, line))
        seq += 1

    new_users = np.flatnonzero(users.is_new & np.isin(np.arange(len(users.is_new)), e.user))
    for u in new_users[np.argsort(e.registration_ms[new_users], kind="stable")].tolist():
        if budget - len(rows) < 2:
            break
        submitted = int(e.registration_ms[u])
        register = submitted - int(rng.integers(10_000, 90_000))
        add(register, _anonymous_line("Guest", PAGE["Register"], "free", next_session, 0, register))
        add(
            submitted,
            _anonymous_line(
                "Guest", PAGE["Submit Registration"], "free", next_session, 1, submitted
            ),
        )
        next_session += 1

    left = budget - len(rows)
    # Ends of sessions (not cancellations) with an hour to spare before the period ends.
    last = (
        np.flatnonzero(np.r_[e.session_id[1:] != e.session_id[:-1], True])
        if len(e.ts)
        else np.zeros(0, int)
    )
    confirmed = e.page[last] == PAGE["Cancellation Confirmation"]
    last = last[(e.ts[last] < end_ms - 3_600_000) & ~confirmed]
    guests = left if not len(last) else round(0.1 * left)
    guest_pages = [PAGE[p] for p in ("Home", "About", "Help", "Register", "Error")]
    while guests > 0:
        size = min(guests, int(rng.integers(1, 4)))
        ts = int(rng.integers(start_ms, max(start_ms + 1, end_ms - 3_600_000)))
        for item in range(size):
            page = (
                guest_pages[int(rng.choice(5, p=[0.5, 0.15, 0.15, 0.12, 0.08]))]
                if item
                else PAGE["Home"]
            )
            add(ts, _anonymous_line("Guest", page, "free", next_session, item, ts))
            ts += int(rng.integers(2_000, 60_000))
        next_session += 1
        guests -= size

    left = budget - len(rows)
    if left <= 0 or not len(last):
        return rows
    weight = np.where(e.page[last] == PAGE["Logout"], 5.0, 1.0)
    per_session = rng.multinomial(left, weight / weight.sum())
    after_pages = [PAGE[p] for p in ("Home", "Login", "About", "Help")]
    for r in np.flatnonzero(per_session).tolist():
        i = int(last[r])
        ts, item, level = int(e.ts[i]), int(e.item[i]), "paid" if e.paid[i] else "free"
        for k in range(int(per_session[r])):
            ts += int(rng.integers(1_000, 60_000))
            item += 1
            page = after_pages[int(rng.choice(4, p=[0.45, 0.35, 0.1, 0.1]))] if k else PAGE["Home"]
            add(ts, _anonymous_line("Logged Out", page, level, int(e.session_id[i]), item, ts))
    return rows


def _write_files(spark: SparkSession, output: str, files: dict[str, bytes]) -> None:
    """Create or overwrite each file under `output` through Hadoop's FileSystem API."""
    jvm = spark._jvm
    root = jvm.org.apache.hadoop.fs.Path(output)
    fs = root.getFileSystem(spark._jsc.hadoopConfiguration())
    fs.mkdirs(root)
    for name, data in files.items():
        stream = fs.create(jvm.org.apache.hadoop.fs.Path(root, name), True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
