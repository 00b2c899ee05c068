"""Bulk issuance (批量发证): a department uploads many licences at once, each row is checked
and reported with its line, and the valid ones are issued through the seal node's batch signing.

Where things are:

- :mod:`.jobs` creates a job from an upload (every row checked first), runs and resumes it
  under a lease, and shows its progress; ``licenses.api`` only translates HTTP to it;
- :mod:`.chunks` reserves a chunk of rows, seals it as one batch and writes its licences once,
  sealed and valid, and rebuilds a chunk interrupted after signing into the very same batch;
- :mod:`.checked_rows` parses CSV and JSON lines and keeps each row's checked values sealed
  with its job and line, so the runner does not check them all again.
"""
