"""The one ``environ.Env`` every settings module reads through."""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# `make run` writes .env for commands run in a second terminal; the test suite (`make test`
# sets ORGBILLING_IGNORE_DOTENV=1) must not pick up the dev server's database, cache or broker.
if os.environ.get("ORGBILLING_IGNORE_DOTENV") != "1":
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
