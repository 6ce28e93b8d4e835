"""The status page: a small web server in its own process, fed by the engine process through a pipe.

``feed`` runs in the engine process (gathers the status and meters, takes actions); ``process`` starts the
web process; ``app`` is the web process's Starlette application; ``history`` keeps the level and load
plots; ``config`` is ``[web]``.
"""
