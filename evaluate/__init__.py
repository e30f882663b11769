"""Load testing and scoring, shared by `ggctl demo` (loopback) and `ggctl evaluate` (cluster).

    profile.py   stages of users and think time; the challenge's 30-minute profile
    loadgen.py   Locust in a child process (it monkey-patches its process); every request logged
    monitor.py   resource samples in the course's CSV columns; a psutil sampler for local runs
    scoring.py   the challenge's scores from the request log and the samples
    report.py    rich tables, results JSON, per-stage CSV

Nothing here imports Locust at module level: only the child process does.
"""
