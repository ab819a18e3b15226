"""The bottom line: "AE or VAE on this data?", one row per goal, before anything else.

Which roster entries play "the AE" and "the VAE" is a *matching*: the entries named ``ae`` and
``vae``; in a sweep preset, one pair per swept value (``ae:latent_dim=2`` with
``vae:latent_dim=2``; in the beta sweep the beta-VAE at each beta against the AE). The claims of
the source discussion are judged per matching too. Each row compares the two on the task's
primary figure with ``compare_pair``, the verdicts' own rule (health checks, guards, paired
intervals), so the bottom line, the verdicts and the claims cannot disagree.
"""

from __future__ import annotations

from .verdicts import CLEAR, LEVEL, ONE_SEED, UNCONTESTED, compare_pair, format_value

ROLES = ("ae", "vae")
# Entries that may play the VAE in a beta sweep, besides "vae" itself.
VAE_FAMILY = ("vae", "beta_vae")


def matchings(roster: list[dict], preset: dict | None) -> list[dict]:
    """[{"label": None or "latent_dim=2", "value": swept value, "roles": {"ae": key,
    "vae": key}}]; empty when the roster has no AE-VAE pair."""
    option = (preset or {}).get("sweep")
    if option:
        values = sorted({entry["options"][option] for entry in roster
                         if option in entry["options"]}, key=float)
        found = []
        for value in values:
            ae = _pick(roster, ("ae",), option, value)
            vae = _pick(roster, ("vae",), option, value) or _pick(roster, VAE_FAMILY, option,
                                                                   value)
            if ae and vae:
                found.append({"label": f"{option}={value:g}" if isinstance(value, float)
                              else f"{option}={value}", "value": value,
                              "roles": {"ae": ae, "vae": vae}})
        if found:
            return found
        # --models replaced the preset's roster with entries that do not sweep its option
        # (--preset latent-sweep --models ae,vae): the plain pair, as without a preset.
    keys = {entry["key"] for entry in roster}
    roles = {}
    for role in ROLES:
        if role in keys:
            roles[role] = role
            continue
        same = [entry["key"] for entry in roster if entry["model"] == role]
        if len(same) == 1:
            roles[role] = same[0]
    if len(roles) < 2:
        return []
    return [{"label": None, "value": None, "roles": roles}]


def pairing_problem(roster: list[dict], preset: dict | None = None) -> str:
    """Why ``matchings`` found no AE-VAE pair, in words: which side is missing, or which
    entries make it ambiguous."""
    problems = []
    for role in ROLES:
        # In a sweep, a beta-VAE may play the VAE (as in ``matchings``).
        models = VAE_FAMILY if role == "vae" and (preset or {}).get("sweep") else (role,)
        same = [entry for entry in roster if entry["model"] in models]
        if not same:
            problems.append(f"it has no {role}")
        elif len(same) > 1 and role not in {entry["key"] for entry in same}:
            names = ", ".join(entry.get("label") or entry["key"] for entry in same)
            problems.append(f"which of its {len(same)} {role} entries ({names}) plays the "
                            f"{role.upper()} is ambiguous")
    return "the roster has no AE-VAE pair: " + "; ".join(problems or ["none matches"])


def _pick(roster: list[dict], models: tuple[str, ...], option: str, value) -> str | None:
    """The entry of one of ``models`` swept to ``value``; else that model's one unswept entry
    (the beta sweep's AE has no beta)."""
    for entry in roster:
        if entry["model"] in models and entry["options"].get(option) == value:
            return entry["key"]
    plain = [entry["key"] for entry in roster
             if entry["model"] in models and option not in entry["options"]]
    return plain[0] if len(plain) == 1 and models == ("ae",) else None


def bottom_line(tasks: list[dict], roles: dict[str, str]) -> list[dict]:
    """One row per task (goal): the AE's and the VAE's primary figure, which is better and by
    how much, and the best entry of the whole roster where it is neither."""
    ae, vae = roles["ae"], roles["vae"]
    rows = []
    for task in tasks:
        row = {"task": task["name"], "goal": task.get("goal") or task["title"]}
        if task.get("skipped") or not task["metrics"]:
            rows.append({**row, "outcome": "skipped", "better": None,
                         "reason": task.get("skipped") or "no figure measured"})
            continue
        metric = task["metrics"][0]
        pair = compare_pair(task, metric, ae, vae)
        row.update({"label": metric["label"], "short": metric.get("short", metric["label"]),
                    "digits": metric["digits"], "direction": metric["direction"],
                    "outcome": pair["outcome"], "ae": pair.get("first_mean"),
                    "vae": pair.get("second_mean"), "reason": pair.get("reason"),
                    "by_default": pair.get("by_default"),
                    "negligible": pair.get("negligible", False)})
        if pair.get("shared_seeds"):  # the means shown are on these seeds, not on all
            row["shared_seeds"] = pair["shared_seeds"]
        if pair.get("guard_failure"):  # the figure decided; the other also fails a guard
            row["guard_failure"] = pair["guard_failure"]
        for role, key in (("ae", ae), ("vae", vae)):
            source = metric["rows"].get(key) or {}
            if not source.get("available", False):
                row[f"{role}_reason"] = source.get("reason", "not in the roster")
            if source.get("excluded"):
                row[f"{role}_excluded"] = source["excluded"][0]
        measured = [key for key in (ae, vae) if (metric["rows"].get(key) or {}).get("available")]
        if pair["outcome"] == "not compared" and len(measured) == 1:
            # Only one of the two has the figure (a likelihood): shown (flagged if a health
            # check excluded it), and it answers by itself when healthy.
            row["ae" if measured[0] == ae else "vae"] = metric["rows"][measured[0]]["mean"]
            if not metric["rows"][measured[0]].get("excluded"):
                row["outcome"] = "only"
                pair = {**pair, "leader": measured[0]}
        winner = {"first": ae, "second": vae}.get(pair["outcome"]) or pair.get("leader")
        # "better" names a model only where a row answers (a win, the only one, a one-seed
        # lead); "leader" is ahead on the mean, whatever the row says.
        row["leader"] = {ae: "ae", vae: "vae"}.get(winner)
        decided = row["outcome"] in ("first", "second", "only", "one seed")
        row["better"] = row["leader"] if decided else None
        if "difference" in pair:
            # Oriented as the better (or leading) model minus the other.
            flip = row["leader"] == "vae"
            difference, low, high = pair["difference"], pair.get("low"), pair.get("high")
            if flip:
                difference = -difference
                low, high = (-high, -low) if low is not None else (None, None)
            row.update({"difference": difference, "low": low, "high": high,
                        "seeds": pair.get("seeds"),
                        # A seed on which the two are equal is in neither's favour.
                        "seeds_in_favour": pair.get("seeds_against" if flip else
                                                    "seeds_in_favour")})
        verdict = metric["verdict"]
        best = verdict.get("winner")
        if best is not None and best not in (ae, vae) and verdict["status"] in (
                CLEAR, LEVEL, ONE_SEED, UNCONTESTED):
            row["best"] = best
            row["best_value"] = metric["rows"][best]["mean"]
            row["best_status"] = verdict["status"]
            row["best_negligible"] = bool(verdict.get("negligible"))
        rows.append(row)
    return rows


def row_verdict(row: dict, labels: dict[str, str], roles: dict[str, str]) -> str:
    """The "better" cell in words: "vae", "vae (ae not compared: ...)", "level", ..."""
    outcome = row["outcome"]
    if outcome == "skipped":
        return "not measured"
    if outcome == "not compared":
        return "not compared"
    name = labels.get(roles.get(row.get("better") or "", ""), row.get("better"))
    if outcome in ("first", "second"):
        return f"{name}" + (" (by default)" if row.get("by_default") else "")
    if outcome == "only":
        return f"{name} (only one)"
    if outcome == "one seed":
        return f"{name} leads (one seed)" if row.get("better") else "equal (one seed)"
    if row.get("by_default"):  # each fails a guard the other passes
        return "trade-off"
    return "tie" if row.get("negligible") else "level"


def margin_text(row: dict) -> str:
    """The margin with its interval; "" where a check decided."""
    if ("difference" not in row or row.get("by_default")
            or row["outcome"] == "not compared"):  # the reason, a note, says why
        return ""
    digits = row["digits"]
    text = format_value(row["difference"], digits)
    if row.get("low") is not None:
        text += f" [{format_value(row['low'], digits)}, {format_value(row['high'], digits)}]"
    return text


def in_short(rows: list[dict], labels: dict[str, str], roles: dict[str, str]) -> str:
    """"vae for: generate ...; ae for: compress ...; no clear difference for: ...", then what
    the figures did not decide: wins by default (the other failed a health check or a guard),
    leads on one seed (nothing tested), goals where the two were not compared."""
    goals: dict[str, list[str]] = {key: [] for key in (
        "ae", "vae", "level", "default ae", "default vae", "trade-off", "one seed",
        "not compared")}
    for row in rows:
        outcome = row["outcome"]
        if outcome in ("first", "second", "only") and row.get("better"):
            key = f"default {row['better']}" if row.get("by_default") else row["better"]
            goals[key].append(row["goal"])
        elif outcome == "level" and row.get("by_default"):
            goals["trade-off"].append(row["goal"])
        elif outcome in ("level", "one seed", "not compared"):
            goals[outcome].append(row["goal"])

    def name(role: str) -> str:
        return labels.get(roles[role], roles[role])

    parts = [f"{name(role)} for: {', '.join(goals[role])}" for role in ("vae", "ae")
             if goals[role]]
    if goals["level"]:
        parts.append(f"no clear difference for: {', '.join(goals['level'])}")
    defaults = [f"{name(role)} for {', '.join(goals[f'default {role}'])}"
                for role in ("vae", "ae") if goals[f"default {role}"]]
    if defaults:
        parts.append("by default, the other failing a health check or guard (the figure did "
                     f"not decide): {' and '.join(defaults)}")
    if goals["trade-off"]:
        parts.append("a trade-off, each failing a guard the other passes, for: "
                     f"{', '.join(goals['trade-off'])}")
    if goals["one seed"]:
        parts.append(f"one seed, so nothing tested, for: {', '.join(goals['one seed'])}")
    if goals["not compared"]:
        parts.append(f"not compared for: {', '.join(goals['not compared'])}")
    if not parts:
        return "no goal was measured for both."
    text = "; ".join(parts) + "."
    decided = sum(len(goals[key]) for key in ("ae", "vae", "level"))
    if not decided:
        text = f"the figures decided no goal: {text}"
    return text
