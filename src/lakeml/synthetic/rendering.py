"""Simulated sessions to timed events, and events to eventsim JSON lines with dirt on top.

`expand` lays out each session's pages in order and times them (`Events`); `render` writes
one JSON line per event, adds duplicates, malformed lines, missing fields, bad values and
lines of logged-out visitors at the configured rates, and splits the lines into day files.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np

from lakeml.core.config import GenerateConfig
from lakeml.synthetic.catalogue import (
    DAY_MS,
    INTERLEAVED,
    PAGE,
    PAGE_NAMES,
    PAGES,
    Catalogue,
    Users,
    js,
)
from lakeml.synthetic.simulation import Sessions

REQUIRED_KEYS = ("ts", "page", "sessionId", "itemInSession", "auth", "level")
KEYS = (
    "artist", "auth", "firstName", "gender", "itemInSession", "lastName", "length", "level",
    "location", "method", "page", "registration", "sessionId", "song", "status", "ts",
    "userAgent", "userId",
)  # fmt: skip
_LINE = "".join(
    ["{", ",".join(f'"{k}":%s' for k in KEYS), "}"]
)  # every value is pre-rendered JSON text


# ---------------------------------------------------------------------------------------
# Sessions -> timed events
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Events:
    """Clean events (one row each, grouped by session in order) and per-user registration."""

    user: np.ndarray
    session_id: np.ndarray
    item: np.ndarray
    page: np.ndarray
    song: np.ndarray  # catalogue index, -1 when not NextSong
    ts: np.ndarray  # epoch ms
    paid: np.ndarray
    registration_ms: np.ndarray  # per user


def expand(
    rng: np.random.Generator,
    catalogue: Catalogue,
    users: Users,
    sessions: Sessions,
    days: int,
    start_ms: int,
) -> Events:
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
    return Events(
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


def render(
    rng: np.random.Generator,
    cfg: GenerateConfig,
    catalogue: Catalogue,
    users: Users,
    events: Events,
    start_date: dt.date,
) -> tuple[dict[str, bytes], dict[str, int]]:
    """Render clean lines, add each kind of dirty line, and split them into day files."""
    e = events
    n = len(e.ts)
    start_ms = (start_date - dt.date(1970, 1, 1)).days * DAY_MS
    is_song = e.page == PAGE["NextSong"]
    song = np.where(is_song, e.song, 0)
    page_json = np.array([js(p) for p in PAGE_NAMES], dtype=object)
    method_json = np.array([js(PAGES[p][0]) for p in PAGE_NAMES], dtype=object)
    status = np.array([PAGES[p][1] for p in PAGE_NAMES])
    user_id_json = np.array([js(u) for u in users.user_id], dtype=object)
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
        "null", js(auth), first, gender, item, last, "null", js(level), location,
        js(method), js(name), "null", session_id, "null", status, ts, agent, '""',
    )  # fmt: skip


def _logged_out_lines(
    rng: np.random.Generator,
    budget: int,
    e: Events,
    users: Users,
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
