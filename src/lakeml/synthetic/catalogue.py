"""The catalogue and the people of the synthetic event logs.

Page names with eventsim's method and status, the pages visited between songs with their
rates, word lists, cities and user agents; `Catalogue` (songs with artist, length and
popularity) and `Users` (identity and latent traits of each user), both pre-rendered as JSON
text where they end up in a line. Nothing here depends on the day-by-day simulation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

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

# Latent traits: the share of users whose satisfaction drifts down and how fast (per day),
# and the spread of the unobserved churn propensity added to the hazard's log-odds.
DRIFT_SHARE, DRIFT_RANGE = 0.35, (0.05, 0.15)
FRAILTY_SD = 0.25


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


@dataclass(frozen=True)
class Catalogue:
    """Songs with artist, length and Zipf-like popularity, pre-rendered as JSON text."""

    artist_json: np.ndarray  # per song
    song_json: np.ndarray
    length_json: np.ndarray
    length_s: np.ndarray
    cdf: np.ndarray

    @staticmethod
    def build(rng: np.random.Generator, n_artists: int = 1500, n_songs: int = 6000) -> Catalogue:
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
        return Catalogue(
            artist_json=np.array([js(artists[a]) for a in song_artist], dtype=object),
            song_json=np.array([js(t) for t in titles], dtype=object),
            length_json=np.array([repr(float(x)) for x in length], dtype=object),
            length_s=length,
            cdf=cdf,
        )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.cdf) - 1)


@dataclass(frozen=True)
class Users:
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
    def draw(rng: np.random.Generator, n: int, days: int, start_ms: int) -> Users:
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
        return Users(
            user_id=list(ids),
            first_json=np.array([js(x) for x in first], dtype=object),
            last_json=np.array([js(_LAST[i]) for i in rng.integers(len(_LAST), size=n)]),
            gender_json=np.where(male, '"M"', '"F"').astype(object),
            location_json=np.array(
                [
                    js(_CITIES[i])
                    for i in rng.choice(len(_CITIES), n, p=city_weight / city_weight.sum())
                ]
            ),
            agent_json=np.array(
                [
                    js(_AGENTS[i])
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


def js(value: str) -> str:
    """`value` as JSON text, non-ASCII characters kept as they are."""
    return json.dumps(value, ensure_ascii=False)
