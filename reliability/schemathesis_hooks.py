"""Schemathesis hooks of reliability/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Authentication: a bearer token from POST /token for the run's identity, fetched again on any
401. The fuzzer may log that token out, and in the admin run it may also disable the account,
change its password or take its `admin` role away (all documented behaviours). When the identity
can no longer log in with its role, a fresh account with the same role is made through the CLI
(`bulwark users create`, on the server's own database) and the run goes on as that account.

Settings come from the environment: REL_ST_URL (the server), REL_ST_USERNAME, REL_ST_PASSWORD,
REL_ST_ROLE (`admin` or empty), REL_ST_BIN and REL_ST_ENV_FILE (the server's binary and
environment, for the CLI), and REL_ST_EVENTS (a file that gets one line per replaced account).
"""

import base64
import json
import os
import subprocess

import requests
import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance
from hypothesis.internal import lambda_sources as _lambda_sources

# Hypothesis describes each filter's lambda by parsing its source file with `ast.parse`; on
# CPython 3.11.7 that raises "SystemError: AST constructor recursion depth mismatch" for one of
# schemathesis's own modules (a CPython bug, fixed in later 3.11 releases), and the error ends
# the operation's test as a failure that has nothing to do with the server. The description is
# only a repr: fall back to a plain one.
_lambda_description = _lambda_sources.lambda_description


def _lambda_description_or_plain(f):
    try:
        return _lambda_description(f)
    except SystemError:
        return "lambda: <source not parsed>"


_lambda_sources.lambda_description = _lambda_description_or_plain

PASSWORD = os.environ["REL_ST_PASSWORD"]
ROLE = os.environ.get("REL_ST_ROLE", "")


def _claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _server_env():
    env = dict(os.environ)
    with open(os.environ["REL_ST_ENV_FILE"], encoding="utf-8") as lines:
        for line in lines:
            key, _, value = line.rstrip("\n").partition("=")
            env[key] = value
    return env


@schemathesis.auth()
class BulwarkLogin:
    """Logs in as the run's identity; replaces the account when it was locked out."""

    def __init__(self):
        self.username = os.environ["REL_ST_USERNAME"]
        self.replaced = 0

    def _login(self, base_url):
        response = requests.post(
            f"{base_url}/token",
            data={"username": self.username, "password": PASSWORD},
            timeout=30,
        )
        if response.status_code != 200:
            return None
        token = response.json()["access_token"]
        if ROLE and ROLE not in _claims(token).get("roles", []):
            return None
        return token

    def _replace_account(self):
        self.replaced += 1
        name = f"{os.environ['REL_ST_USERNAME']}-{self.replaced}"
        command = [os.environ["REL_ST_BIN"], "users", "create", name, "--password-stdin"]
        if ROLE:
            command += ["--role", ROLE]
        subprocess.run(
            command, input=PASSWORD + "\n", text=True, env=_server_env(), check=True,
            stdout=subprocess.DEVNULL,
        )
        with open(os.environ["REL_ST_EVENTS"], "a", encoding="utf-8") as events:
            events.write(f"replaced {self.username} by {name}\n")
        self.username = name

    def get(self, case, context):
        base_url = os.environ["REL_ST_URL"]
        token = self._login(base_url)
        if token is None:
            self._replace_account()
            token = self._login(base_url)
        if token is None:
            raise RuntimeError(f"cannot log in as {self.username}, even after replacing it")
        return token

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# Operations whose body holds a new password (see schemathesis.toml).
PASSWORD_OPERATIONS = {"POST /users/signup", "POST /admin/users", "PATCH /admin/users/{user_id}"}
STRENGTH = {"password_common", "password_weak"}


def _only_password_strength(response):
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(detail) and all(
        d.get("loc") == ["body", "password"] and d.get("type") in STRENGTH for d in detail
    )


@schemathesis.check
def password_aware_positive_data_acceptance(ctx, response, case):
    """The built-in `positive_data_acceptance`, for the operations taking a password, with two
    exceptions: a 422 naming only the password's strength (which no schema can express), and a
    request whose path holds `None`, which is not schema-valid data: the stateful phase filled
    it from a link to a null value (an audit event's `user_id`)."""
    if case.operation.label not in PASSWORD_OPERATIONS:
        return None
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 422 and _only_password_strength(response):
            return None
        if any(value is None for value in (case.path_parameters or {}).values()):
            return None
        raise
