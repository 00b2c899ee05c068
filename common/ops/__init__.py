"""Operations: the launcher, the ``xsn`` CLI, Celery tasks and migrations."""
