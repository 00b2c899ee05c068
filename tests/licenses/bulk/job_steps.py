"""The steps the bulk-job tests take: a CSV of residence permits (bad rows where asked), its upload
by the police system's client, the job read in a session of its own (as another runner would), and
a run until the runner is killed."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from common.values.codes import CitizenId
from licenses.bulk import jobs
from licenses.models import BulkJob

HEADER = ["holder_code", "holder_name", "name", "sex", "birth_date", "id_number", "address"]


def residents_csv(n: int, bad: dict[int, dict] | None = None) -> str:
    """``n`` valid rows (residents' permits, CSV with a header line), row ``i`` changed by ``bad[i]``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for i in range(n):
        number = CitizenId.build("610113", date(1980, 1, 1 + i % 28), i % 1000).value
        row = {"holder_code": number, "holder_name": f"居民{i}", "name": f"居民{i}", "sex": "男",
               "birth_date": "1980-01-01", "id_number": number, "address": f"西安市雁塔区{i}号"}
        row.update((bad or {}).get(i, {}))
        writer.writerow([row[k] for k in HEADER])
    return out.getvalue()


def upload(h, text, fmt="csv"):
    """``text`` uploaded as a bulk job of residence permits by the police system (``fmt``: csv or jsonl)."""
    return h.client.post(f"/bulk-jobs?type_code=residence_permit&format={fmt}", data=text.encode(), headers=h.police,
                         content_type="text/csv" if fmt == "csv" else "application/jsonl")


def open_job(app, job_id):
    """A session of its own and the job in it, as another runner sees it; the caller closes the session."""
    from common.db import get_db

    session = get_db(app).sessionmaker()
    return session, session.get(BulkJob, job_id)


def run_until_killed(app, node, job_id, **options) -> None:
    """The job run (``options``: ``run_job``'s) in a session of its own until the runner is killed:
    the caller's stand-in for the seal node raises ``KeyboardInterrupt``."""
    session, job = open_job(app, job_id)
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(session, node["deps"], job, **options)
    session.close()
