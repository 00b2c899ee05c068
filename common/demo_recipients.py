"""The 1,000 demo recipients of the message hub's bulk-send demo (docs/DEMO.md), one definition.

Identity's seed registers them as people and the hub's seed gives some of them preferences;
the two services do not import each other, so both read this list. Everything is derived from
the index, so every run, every machine and every test gets the same people:

* ``subject``: ``uuid5(DEMO_NAMESPACE, "recipient-<index>")`` as 32 hex digits (identity's
  ``Person.id`` format), so the hub can key preferences without asking identity;
* ``id_number``: a valid GB 11643 number (check digit computed by ``CitizenId.build``), region
  610103 碑林区, one birth date per index (1950-01-01 + 17·index days), sequence 9xx: no other
  demo or test person uses that region;
* ``mobile``: ``199`` + the index in eight digits (199 00000 000 … 199 00000 999);
* ``email``: ``demo-<index in four digits>@example.test`` (RFC 2606's reserved test domain).

The preference mix (``kind``), by ``index % 10`` (category ``notice``, what the demo template
sends):

======== =============== ==========================================================
index    kind            hub preferences
======== =============== ==========================================================
0–5      ``plain``       none (600 people)
6        ``no_sms``      ``notice`` off on SMS (100): the next channel is used instead
7        ``no_notice``   ``notice`` off on SMS and in-app (100): nothing reaches them
8        ``quiet_night`` quiet hours 21:00–09:00 Beijing time (100)
9        ``quiet_day``   quiet hours 09:00–21:00 Beijing time (100; night-shift workers)
======== =============== ==========================================================

At any moment one of the two quiet-hours groups is inside its window (SMS and e-mail to it are
held until the window ends) and the other is not: :func:`quiet_kind_at` says which.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache

from common.values.codes import CitizenId
from common.values.times import CHINA

COUNT = 1000
DEMO_NAMESPACE = uuid.UUID("5b0e7d2a-4c1f-5e8b-9a3d-7f6c2e1b0a94")
REGION = "610103"  # 碑林区 (GB/T 2260)
KINDS = ("plain",) * 6 + ("no_sms", "no_notice", "quiet_night", "quiet_day")
# kind -> (category, channels turned off); kind -> (start minute, end minute), Beijing time
OPT_OUTS = {"no_sms": ("notice", ("sms",)), "no_notice": ("notice", ("sms", "inapp"))}
QUIET_HOURS = {"quiet_night": (21 * 60, 9 * 60), "quiet_day": (9 * 60, 21 * 60)}
_SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"


@dataclass(frozen=True)
class DemoRecipient:
    index: int
    subject: str
    name: str
    id_number: str
    mobile: str
    email: str
    kind: str


def recipient(index: int) -> DemoRecipient:
    born = date(1950, 1, 1) + timedelta(days=17 * index)
    name = _SURNAMES[index % len(_SURNAMES)] + _GIVEN[(index // len(_SURNAMES)) % len(_GIVEN)] \
        + _GIVEN[index % len(_GIVEN)]
    return DemoRecipient(index=index, subject=uuid.uuid5(DEMO_NAMESPACE, f"recipient-{index}").hex, name=name,
                         id_number=CitizenId.build(REGION, born, 900 + index % 100).value,
                         mobile=f"199{index:08d}", email=f"demo-{index:04d}@example.test",
                         kind=KINDS[index % len(KINDS)])


@cache
def recipients() -> tuple[DemoRecipient, ...]:
    return tuple(recipient(index) for index in range(COUNT))


def quiet_kind_at(moment: datetime) -> str:
    """The quiet-hours kind whose window covers ``moment`` (an aware datetime)."""
    local = moment.astimezone(CHINA)
    start, end = QUIET_HOURS["quiet_day"]
    return "quiet_day" if start <= local.hour * 60 + local.minute < end else "quiet_night"
