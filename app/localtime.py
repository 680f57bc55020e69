"""Times as people read them: in the service's zone (a setting, Asia/Shanghai by default). Pure.

The database keeps UTC, without a zone on either backend. The API answers ISO 8601 with the offset
(``as_utc``); pages, reports and sheets show local time (``local_text``) and say which zone it is.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

# What people in the committee call their zone; any other zone is named by its key.
ZONE_NAMES = {"Asia/Shanghai": "北京时间"}


def as_utc(value: dt.datetime) -> dt.datetime:
    """The same instant, with the UTC offset attached: a naive value read back is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def local(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return as_utc(value).astimezone(zone)


def local_text(value: dt.datetime, zone: ZoneInfo, *, seconds: bool = False) -> str:
    return local(value, zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_date(value: dt.datetime, zone: ZoneInfo) -> str:
    return local(value, zone).strftime("%Y-%m-%d")


def zone_label(zone: ZoneInfo) -> str:
    return ZONE_NAMES.get(zone.key, zone.key)
