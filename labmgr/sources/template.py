"""Name templates: strftime-style patterns such as ``shop/%Y/%m/%d/shop-%Y-%m-%d_%H%M.sql.gz``.

A template becomes one regular expression; the directives it holds say when a
backup was made. ``*`` stands for any run of characters but '/'. A template with
no date in it leaves the time to the storage's own (the object's modification time).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

DIRECTIVES = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "j": r"\d{3}",
              "H": r"\d{2}", "M": r"\d{2}", "S": r"\d{2}", "s": r"\d{1,12}"}
_TOKEN = re.compile(r"%(.)|\*")


class TemplateError(ValueError):
    pass


class NameTemplate:
    def __init__(self, text: str, zone: str = "UTC") -> None:
        self.text = text
        self.zone: tzinfo = timezone.utc if zone == "UTC" else ZoneInfo(zone)
        pattern, seen, position, self.literal_head = [], set(), 0, None
        for match in _TOKEN.finditer(text):
            pattern.append(re.escape(text[position:match.start()]))
            if self.literal_head is None and match.group(0) != "%%":
                self.literal_head = text[:match.start()].replace("%%", "%")
            directive = match.group(1)
            if match.group(0) == "*":
                pattern.append(r"[^/]*")
            elif directive == "%":
                pattern.append("%")
            elif directive not in DIRECTIVES:
                raise TemplateError(f"'%{directive}' in name template {text!r} is not one labmgr reads "
                                    f"(it reads %{', %'.join(DIRECTIVES)}, %% and *)")
            elif directive in seen:
                pattern.append(f"(?P={directive})")      # written twice: both must say the same
            else:
                seen.add(directive)
                pattern.append(f"(?P<{directive}>{DIRECTIVES[directive]})")
            position = match.end()
        pattern.append(re.escape(text[position:]))
        if self.literal_head is None:
            self.literal_head = text.replace("%%", "%")
        if text.startswith("/") or "/../" in f"/{text}/":
            raise TemplateError(f"name template {text!r} must be relative to its location, without '..'")
        if ("y" in seen or "Y" in seen) and not ({"m", "d"} <= seen or "j" in seen):
            raise TemplateError(f"name template {text!r} has a year but no day (%m and %d, or %j)")
        self.directives = frozenset(seen)
        self.regex = re.compile("".join(pattern) + r"\Z")

    @property
    def dated(self) -> bool:
        """Whether names carry their time (else the storage's modification time is used)."""
        return bool(self.directives & {"Y", "y", "s"})

    @property
    def listing_prefix(self) -> str:
        """The fixed start of every matching name: what to ask the storage to list."""
        return self.literal_head

    def match(self, name: str) -> datetime | None | bool:
        """The UTC time ``name`` says; True when it matches a template with no date; False when it
        does not match (or names an impossible time)."""
        found = self.regex.match(name)
        if not found:
            return False
        if not self.dated:
            return True
        parts = found.groupdict()
        try:
            if "s" in parts:
                return datetime.fromtimestamp(int(parts["s"]), timezone.utc)
            year = int(parts["Y"]) if "Y" in parts else 2000 + int(parts["y"])
            if "j" in parts:
                day = datetime(year, 1, 1) + timedelta(days=int(parts["j"]) - 1)
                month, mday = day.month, day.day
            else:
                month, mday = int(parts["m"]), int(parts["d"])
            local = datetime(year, month, mday, int(parts.get("H", 0)), int(parts.get("M", 0)),
                             int(parts.get("S", 0)), tzinfo=self.zone)
        except (ValueError, OverflowError):
            return False
        return local.astimezone(timezone.utc)

    def render(self, moment: datetime) -> str:
        """The name of a backup made at ``moment`` (tests, examples)."""
        if "s" in self.directives:
            moment = moment.astimezone(timezone.utc)
            return self.text.replace("%s", str(int(moment.timestamp())))
        return moment.astimezone(self.zone).strftime(self.text)
