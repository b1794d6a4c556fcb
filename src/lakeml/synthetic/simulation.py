"""The day-by-day simulation: sessions, level changes and churn.

Each user has latent traits (activity, satisfaction, paid-ness). Satisfaction drifts down
for some users, which lowers their activity and raises their thumbs down, help visits and
downgrades. The daily churn hazard is a noisy function of what a feature pipeline can see
in the last weeks (thumbs down/up, adverts, errors, friends, playlist adds, level, falling
activity, idle days), so point-in-time features predict churn well but not perfectly.

`simulate` draws each day's sessions, their songs and pages, level changes and churn from
the traits of `catalogue.Users`, starting `BURN_IN_DAYS` before the first written day, and
returns the planned sessions of the written days (`Sessions`); `rendering.expand` orders and
times their pages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakeml.synthetic.catalogue import BURN_IN_DAYS, DAY_MS, INTERLEAVED, Users

_IL = {name: i for i, (name, *_) in enumerate(INTERLEAVED)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Sessions:
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
# unobserved parts keep point-in-time features from predicting churn perfectly. Frailty is a
# latent trait of `Users` (catalogue.FRAILTY_SD).
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
HAZARD_NOISE_SD = 0.2
# Satisfaction: how strongly it drives the number of sessions, and its day-to-day swings.
ACTIVITY_ELASTICITY = 0.45
MOOD_SD = 0.3
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


def simulate(rng: np.random.Generator, users: Users, days: int, weekday: int) -> Sessions:
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
    return Sessions(**{k: np.concatenate([d[k] for d in kept]) for k in kept[0]})
