"""Migration 0006_lifecycle on SQLite: widening the state CHECK rebuilds `accounts`; app passwords survive
the rebuild (their foreign key cascades on DROP TABLE), the generation triggers are there again, old
`disabled` rows stay readable; and the way down maps left/archived back to disabled."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from mailbastion.directory.database import alembic_config, current_revision, make_engine, migrate
from mailbastion.directory.models import AccountState


def test_up_keeps_app_passwords_and_triggers_and_down_maps_the_new_states(tmp_path: Path) -> None:
    e = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    migrate(e, "0005_portal")
    with e.begin() as c:
        c.execute(sa.text("INSERT INTO domains(name, created_at) VALUES ('example.org', '2026-01-01')"))
        for i, state in enumerate(("active", "disabled"), start=1):
            c.execute(sa.text("INSERT INTO accounts(address, domain_id, state, created_at) "
                              f"VALUES ('u{i}@example.org', 1, '{state}', '2026-01-01')"))
        c.execute(sa.text("INSERT INTO app_passwords(account_id, name, prefix, password_hash, created_at) "
                          "VALUES (1, 'phone', 'abcd', 'x', '2026-01-01')"))
    migrate(e, "0006_lifecycle")
    assert current_revision(e) == "0006_lifecycle"
    with e.begin() as c:
        assert c.execute(sa.text("SELECT name FROM app_passwords")).scalars().all() == ["phone"]
        assert AccountState(c.execute(sa.text("SELECT state FROM accounts WHERE id = 2")).scalar()) is AccountState.DISABLED
        before = c.execute(sa.text("SELECT generation FROM directory_generation")).scalar()
        c.execute(sa.text("UPDATE accounts SET state = 'left', successor = 'x@example.org' WHERE id = 1"))
        assert c.execute(sa.text("SELECT generation FROM directory_generation")).scalar() == before + 1
    with e.connect() as conn:
        cfg = alembic_config(e)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005_portal")
        conn.commit()
    with e.begin() as c:
        assert c.execute(sa.text("SELECT state FROM accounts ORDER BY id")).scalars().all() == ["disabled", "disabled"]
        assert c.execute(sa.text("SELECT count(*) FROM app_passwords")).scalar() == 1
    migrate(e, "0006_lifecycle")
    assert current_revision(e) == "0006_lifecycle"
