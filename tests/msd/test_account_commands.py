"""``msd user`` and ``msd token`` against a real PostgreSQL, and the demo's network refusals."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest

from msd import account_commands
from msd.account_commands import (
    create_demo_credentials,
    parse_expiry,
    refuse_demo_on_network,
)
from msd.cli import main
from msd.settings import SettingsError, load_settings
from workflow import accounts
from workflow.db import Database


@pytest.fixture
def cli_db(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The commands open their own pool from the settings; here they get the test's schema."""

    class Borrowed:
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(db, name)

        def close(self) -> None:  # the fixture closes the real pool
            pass

    monkeypatch.setattr(account_commands, "_pool", lambda settings: Borrowed())
    return db


def test_user_add_reads_the_password_from_stdin_and_it_signs_in(
    cli_db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a sufficiently long secret\n"))

    code = main(["user", "add", "alice", "--role", "analyst", "--password-stdin"])

    signed_in = accounts.sign_in(cli_db, "alice", "a sufficiently long secret", timedelta(hours=1))
    assert code == 0 and signed_in is not None and signed_in[1].role == "analyst"
    assert "password" not in capsys.readouterr().out


def test_a_short_password_is_refused_with_the_rule(
    cli_db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))

    code = main(["user", "add", "bob", "--role", "viewer", "--password-stdin"])

    assert code == 2 and "at least 12 characters" in capsys.readouterr().err
    assert accounts.list_users(cli_db) == []


def test_token_create_prints_a_working_token_once_and_revoke_ends_it(
    cli_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["token", "create", "--role", "viewer", "--name", "grafana", "--expires", "30d"]) == 0
    )
    secret = capsys.readouterr().out.strip().splitlines()[-1]

    principal = accounts.principal_for_token(cli_db, secret)
    assert principal is not None and principal.role == "viewer"
    listed = accounts.list_tokens(cli_db)[0]
    in_30_days = datetime.now(timezone.utc) + timedelta(days=30)
    assert abs((listed["expires_at"] - in_30_days).total_seconds()) < 60

    assert main(["token", "revoke", str(listed["token_id"])]) == 0
    assert accounts.principal_for_token(cli_db, secret) is None
    main(["token", "list"])
    assert secret not in capsys.readouterr().out


def test_expiry_takes_durations_dates_and_instants_and_names_the_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    assert parse_expiry("12h", now) == now + timedelta(hours=12)
    assert parse_expiry("2026-03-01", now) == datetime(2026, 3, 2, tzinfo=timezone.utc)
    assert parse_expiry("2026-03-01T08:00+01:00", now).hour == 8
    with pytest.raises(accounts.AccountError, match="like 30d"):
        parse_expiry("next week", now)


def test_a_network_bind_is_refused_while_the_demo_user_is_enabled(db: Database) -> None:
    create_demo_credentials(db)
    network = load_settings({"host": "0.0.0.0"}, environ={})

    with pytest.raises(SettingsError, match="msd user disable demo"):
        refuse_demo_on_network(network, db)
    refuse_demo_on_network(load_settings({}, environ={}), db)  # loopback is fine

    accounts.disable_user(db, "demo")
    refuse_demo_on_network(network, db)


def test_demo_credentials_are_new_each_run_and_the_old_token_stops(db: Database) -> None:
    first_password, first_token = create_demo_credentials(db)
    second_password, second_token = create_demo_credentials(db)

    assert first_password != second_password
    assert accounts.principal_for_token(db, first_token) is None
    assert accounts.principal_for_token(db, second_token).role == "admin"
    assert accounts.sign_in(db, "demo", second_password, timedelta(hours=1)) is not None


def test_demo_refuses_a_network_address_before_touching_anything(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "data")])

    assert code == 2 and "loopback only" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
