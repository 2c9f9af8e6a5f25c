"""Reliability: faults, crashes, concurrency, hostile input and secrets
(issue #7, docs/reliability.md). Each module proves one promise by trying to
break it."""
