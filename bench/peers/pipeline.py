"""The classic pandas pipeline over the same LMS log exports edlake reads: ingest, validate, pseudonymize, deduplicate
and aggregate per student over 7/14/28-day lookbacks, as of every day of the drop.

It applies edlake's `lms-csv` contract (config/sources/lms-csv.json) rule for rule and in the same order, so the
counts (accepted, duplicates, quarantined per rule) and the practice features can be checked against edlake's:

    python pipeline.py DROP OUT_DIR HMAC_KEY

writes OUT_DIR/features.csv (student_key, as_of_date, practice_{events,correct,attempts,items,minutes}_{7,14,28}d),
OUT_DIR/counts.json, and prints one JSON line with wall seconds and peak RSS.
"""

import glob
import hashlib
import hmac
import json
import os
import resource
import sys
import time

import numpy as np
import pandas as pd

T0 = time.perf_counter()
DROP, OUT, KEY = sys.argv[1], sys.argv[2], sys.argv[3].encode()
WINDOWS = (7, 14, 28)
FUTURE_SKEW = pd.Timedelta(minutes=15)
TRUE = {"true", "1", "yes", "t", "y"}
FALSE = {"false", "0", "no", "f", "n"}
dates = json.load(open(os.path.join(DROP, "_generator.json")))["dates"]


def student_key(student_id: str) -> str:
    """edlake's pseudonym: the first 60 bits of HMAC-SHA256 as 12 characters of lowercase base32."""
    v = int.from_bytes(hmac.new(KEY, f"student:{student_id}".encode(), hashlib.sha256).digest()[:8], "big") >> 4
    return "".join("abcdefghijklmnopqrstuvwxyz234567"[(v >> (5 * (11 - i))) & 31] for i in range(12))


# --- ingest ---------------------------------------------------------------------------------------------------------
frames = []
for d in dates:
    for path in sorted(glob.glob(os.path.join(DROP, f"dt={d}", "lms-csv", "*.csv*"))):
        f = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        f["landed_date"] = pd.Timestamp(d)
        f["source_file"] = path
        f["line_no"] = np.arange(2, len(f) + 2)
        frames.append(f)
df = pd.concat(frames, ignore_index=True)
raw = len(df)

rosters = sorted(glob.glob(os.path.join(DROP, "dt=*", "roster", "roster.csv")))
roster = pd.concat([pd.read_csv(p, dtype=str) for p in rosters]).drop_duplicates("student_id", keep="last")
roster["student_key"] = roster["student_id"].map(student_key)
lms_to_key = dict(zip(roster["lms_id"].str.strip(), roster["student_key"]))
enrol_files = sorted(glob.glob(os.path.join(DROP, "dt=*", "roster", "enrolments.csv")))
enrol = pd.concat([pd.read_csv(p, dtype=str) for p in enrol_files]).drop_duplicates()
enrol["student_key"] = enrol["student_id"].str.strip().map(dict(zip(roster["student_id"], roster["student_key"])))
enrol["start"] = pd.to_datetime(enrol["start_date"]) - pd.Timedelta(days=1)
enrol["end"] = pd.to_datetime(enrol["end_date"]) + pd.Timedelta(days=1)

# --- validate (edlake's contract: the first failing rule is the row's reason) ----------------------------------------
s = {c: df[c].str.strip() for c in ["student_id", "timestamp", "problem_id", "correct", "attempts", "time_spent"]}
lower = s["correct"].str.lower()
correct = pd.Series(np.where(lower.isin(TRUE), 1.0, np.where(lower.isin(FALSE), 0.0, np.nan)), index=df.index)
attempts = pd.to_numeric(s["attempts"], errors="coerce")
attempts = attempts.where(attempts == attempts.round()).round()
time_spent = pd.to_numeric(s["time_spent"], errors="coerce")
local = pd.to_datetime(s["timestamp"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
ts_utc = local.dt.tz_localize("America/New_York", ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
ts_utc = ts_utc.dt.tz_localize(None)
key = s["student_id"].map(lms_to_key)

rule = pd.Series(pd.NA, index=df.index, dtype="object")


def check(name: str, failed: pd.Series) -> None:
    rule.mask(rule.isna() & failed.fillna(False).astype(bool), name, inplace=True)


for col in ["problem_id", "correct"]:
    check("missing_required", s[col].isna() | (s[col] == ""))
check("missing_required", s["timestamp"].isna() | (s["timestamp"] == ""))
check("bad_type", s["correct"].notna() & correct.isna())
check("bad_type", s["attempts"].notna() & attempts.isna())
check("bad_type", s["time_spent"].notna() & time_spent.isna())
check("out_of_range", (attempts < 1) | (attempts > 100))
check("out_of_range", (time_spent < 0) | (time_spent > 86400))
check("malformed_timestamp", ts_utc.isna())
check("future_timestamp", ts_utc > df["landed_date"] + pd.Timedelta(days=1) + FUTURE_SKEW)
check("unknown_student", key.isna())
# out of term: the student has enrolments and none covers the event's day (±1 day)
cand = pd.DataFrame({"row": df.index, "student_key": key, "day": ts_utc.dt.normalize()})[rule.isna()]
m = cand.merge(enrol[["student_key", "start", "end"]], on="student_key", how="inner")
m["inside"] = (m["day"] >= m["start"]) & (m["day"] <= m["end"])
inside = m.groupby("row")["inside"].any()
check("out_of_term", pd.Series(df.index.isin(inside.index[~inside]), index=df.index))

valid = rule.isna()
quarantine = df[~valid].assign(rule=rule[~valid])

# --- deduplicate on content: student, instant and typed values; first by landing, file and line ----------------------
clean = pd.DataFrame(
    {
        "student_key": key,
        "ts_utc": ts_utc,
        "problem_id": s["problem_id"],
        "correct": correct,
        "attempts": attempts,
        "time_spent": time_spent,
        "landed_date": df["landed_date"],
        "source_file": df["source_file"],
        "line_no": df["line_no"],
    }
)[valid]
clean = clean.sort_values(["landed_date", "source_file", "line_no"])
dup = clean.duplicated(["student_key", "ts_utc", "problem_id", "correct", "attempts", "time_spent"])
duplicates = int(dup.sum())
clean = clean[~dup]

# --- aggregate per student and day, then per student over lookbacks as of every day ---------------------------------
clean["date"] = clean["ts_utc"].dt.normalize()
daily_items = clean.groupby(["student_key", "date"])["problem_id"].nunique().rename("items")
daily = clean.groupby(["student_key", "date"]).agg(
    events=("problem_id", "size"),
    correct=("correct", "sum"),
    attempts=("attempts", "sum"),
    seconds=("time_spent", "sum"),
)
daily = daily.join(daily_items)
daily["minutes"] = (daily.pop("seconds") / 60).round(6)

last = pd.Timestamp(dates[-1])
grid_days = pd.date_range(pd.Timestamp(dates[0]) - pd.Timedelta(days=max(WINDOWS) - 1), last)
daily = daily[daily.index.get_level_values("date").isin(grid_days)]
students = daily.index.get_level_values("student_key").unique()
out = []
for measure in ["events", "correct", "attempts", "items", "minutes"]:
    wide = daily[measure].unstack("date").reindex(columns=grid_days, fill_value=0).fillna(0)
    csum = np.cumsum(wide.to_numpy(dtype=np.float64), axis=1)
    padded = np.concatenate([np.zeros((len(wide), max(WINDOWS))), csum], axis=1)
    for w in WINDOWS:
        sums = padded[:, max(WINDOWS) :] - padded[:, max(WINDOWS) - w : padded.shape[1] - w]
        frame = pd.DataFrame(sums, index=wide.index, columns=grid_days)[pd.to_datetime(dates)]
        out.append(frame.stack().rename(f"practice_{measure}_{w}d"))
features = pd.concat(out, axis=1)
features.index.names = ["student_key", "as_of_date"]
features = features[features["practice_events_28d"] > 0].reset_index()

os.makedirs(OUT, exist_ok=True)
features.to_csv(os.path.join(OUT, "features.csv"), index=False, date_format="%Y-%m-%d")
counts = {
    "raw": raw,
    "accepted": len(clean),
    "duplicates": duplicates,
    "quarantined": len(quarantine),
    "byRule": {k: int(v) for k, v in quarantine["rule"].value_counts().sort_index().items()},
}
json.dump(counts, open(os.path.join(OUT, "counts.json"), "w"))
print(
    json.dumps(
        {
            **counts,
            "rows": len(features),
            "seconds": time.perf_counter() - T0,
            "peakRssMb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    )
)
